import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { isTerminal, terminalProgress } from '../../agent/cli/terminal-progress.ts';
import type { Output } from '../../agent/host/output.ts';

/** A terminal as ora sees one: a TTY stream that can move its cursor; what it was sent, kept. */
function fakeTerminal() {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream & { text: string };
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  Object.assign(stream, {
    isTTY: true,
    columns: 120,
    cursorTo: () => true,
    moveCursor: () => true,
    clearLine: () => true,
  });
  Object.defineProperty(stream, 'text', { get: () => text });
  return stream;
}

function recordingOutput() {
  const results: string[][] = [];
  const out: Output = { json: false, result: (_doc, lines) => results.push(lines), progress: () => {} };
  return { out, results };
}

describe('progress on a terminal', () => {
  test('each finished phase stays as a line with how long it took; the result follows', async () => {
    const terminal = fakeTerminal();
    let clock = 0;
    const { out, results } = recordingOutput();
    const progress = terminalProgress(out, terminal, () => clock);
    progress.progress('waiting for the snapshots of backup 20260101T030000Z-a1b2c3');
    clock += 95_000;
    progress.progress('recording the backup as completed');
    clock += 2_000;
    progress.result({}, ['backupId: 20260101T030000Z-a1b2c3']);
    progress.stop();
    await new Promise((resolve) => setImmediate(resolve));
    expect(terminal.text).toContain('waiting for the snapshots of backup 20260101T030000Z-a1b2c3 (95s)');
    expect(terminal.text).toContain('recording the backup as completed (2s)');
    expect(results).toEqual([['backupId: 20260101T030000Z-a1b2c3']]);
  });

  test('plain lines where stderr is not a terminal, or a dumb one, or in CI', () => {
    const pipe = new PassThrough() as unknown as NodeJS.WriteStream;
    expect(isTerminal(pipe, {})).toBe(false);
    const tty = fakeTerminal();
    expect(isTerminal(tty, {})).toBe(true);
    expect(isTerminal(tty, { TERM: 'dumb' })).toBe(false);
    expect(isTerminal(tty, { CI: 'true' })).toBe(false);
  });
});
