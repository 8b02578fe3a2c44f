/**
 * The README says what the code does: its configuration reference is the one the schema makes, and every
 * pgsnap command line it shows uses a command and flags that the command's own usage lists.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test } from 'vitest';
import { configReference, referenceMarkers, withReference } from '../../infra/config/config-reference.ts';
import { pgsnapBin } from '../support/pgsnap.ts';

const readme = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

test('the configuration reference in the README is the one the schema makes (npm run docs)', () => {
  expect(readme).toContain(referenceMarkers.begin);
  expect(withReference(readme, configReference())).toBe(readme);
});

test('every pgsnap command line in the README uses a command and flags that its usage lists', () => {
  // Shell blocks only: walk the fences, each opening one naming its language.
  const blocks: string[] = [];
  let open: { language: string; lines: string[] } | undefined;
  for (const line of readme.split('\n')) {
    if (line.startsWith('```')) {
      if (open && ['sh', 'bash', 'ini', ''].includes(open.language)) blocks.push(open.lines.join('\n'));
      open = open ? undefined : { language: line.slice(3).trim(), lines: [] };
    } else open?.lines.push(line);
  }
  // Backslash-continued lines read as one.
  const lines = blocks.flatMap((block) => block.replace(/\\\n\s*/g, ' ').split('\n'));
  const usages = new Map<string, string>();
  // `restore start` is a command of its own, with its own usage.
  const usageOf = (command: string) => {
    if (!usages.has(command)) {
      usages.set(
        command,
        execFileSync(process.execPath, [pgsnapBin, ...command.split(' '), '--help'], { encoding: 'utf8' }),
      );
    }
    return usages.get(command)!;
  };
  const problems: string[] = [];
  let checked = 0;
  for (const line of lines) {
    for (const match of line.matchAll(/(?:^|[\s;(|&'=])pgsnap ([a-z][a-z-]*(?: start(?= ))?)([^|;&'#]*)/g)) {
      const command = match[1]!;
      let usage: string;
      try {
        usage = usageOf(command);
      } catch {
        problems.push(`${command}: not a pgsnap command (in: ${line.trim()})`);
        continue;
      }
      checked++;
      for (const flag of (match[2] ?? '').matchAll(/(?:^|\s|\[)(--[a-z][a-z-]*)/g)) {
        if (!usage.includes(flag[1]!))
          problems.push(`${command} ${flag[1]}: not in its usage (in: ${line.trim()})`);
      }
    }
  }
  expect(problems).toEqual([]);
  expect(checked).toBeGreaterThan(10);
});
