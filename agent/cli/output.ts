/** How commands speak: one JSON document on stdout with --json, readable lines otherwise; progress on stderr. */

export interface Output {
  json: boolean;
  /** Prints the command's result. */
  result(document: Record<string, unknown>, lines: string[]): void;
  /** Progress for long waits: always on stderr, so stdout stays one document. */
  progress(message: string): void;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    result(document, lines) {
      process.stdout.write(json ? `${JSON.stringify(document, null, 2)}\n` : `${lines.join('\n')}\n`);
    },
    progress(message) {
      process.stderr.write(`pgsnap: ${message}\n`);
    },
  };
}

/** Rows under a header, each column as wide as its widest cell, two spaces apart (the catalog listings). */
export function columns(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

/** Aligns `key: value` pairs for people. */
export function table(pairs: Array<[string, unknown]>): string[] {
  const shown = pairs.filter(([, value]) => value !== undefined && value !== '');
  const width = Math.max(...shown.map(([key]) => key.length));
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width + 2)}${String(value)}`);
}
