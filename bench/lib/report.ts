/** What a benchmark prints and records in bench/results/. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** bench/results/<name>. */
export function resultsPath(name: string): string {
  return resolve(import.meta.dirname, '../results', name);
}

/** Prints the lines and records them, as they are, in bench/results/<name>. */
export function printAndRecord(name: string, lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync(resultsPath(name), `${lines.join('\n')}\n`);
}

/**
 * A long benchmark's report: lines said to stdout as they come and kept,
 * progress to stderr with the time since the start, and the lines recorded
 * once at the end (or at a failure or a signal) with how it ended.
 */
export class Report {
  readonly began = performance.now();
  private readonly lines: string[] = [];
  private written = false;

  constructor(private readonly file: string) {}

  say(line = ''): void {
    console.log(line);
    this.lines.push(line);
  }

  progress(message: string): void {
    const s = Math.round((performance.now() - this.began) / 1000);
    console.error(
      `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${message}`,
    );
  }

  /** Records the lines said so far and `status`; only the first call writes. */
  write(status: string): void {
    if (this.written) return;
    this.written = true;
    mkdirSync(join(this.file, '..'), { recursive: true });
    const elapsed = ((performance.now() - this.began) / 60_000).toFixed(1);
    writeFileSync(this.file, `${[...this.lines, '', `(${status}; ${elapsed} min in all)`].join('\n')}\n`);
  }
}
