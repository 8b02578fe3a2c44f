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
