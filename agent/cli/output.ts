/** Text for people: rows in columns and aligned `key: value` pairs (the catalog listings, records). */

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
