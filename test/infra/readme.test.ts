/**
 * The README and the pages behind it (CONTRIBUTING.md, docs/) say what the code does: the README stays a
 * front page, every generated table is the one its source makes, every pgsnap command line shown uses a
 * command and flags that the command's own usage lists, and every link leads to a file and heading that
 * exist.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { generatedTables, regenerate } from '../../scripts/docs.ts';
import { pgsnapBin } from '../support/pgsnap.ts';

const root = resolve(import.meta.dirname, '../..');
const pages = [
  'README.md',
  'CONTRIBUTING.md',
  ...readdirSync(resolve(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];
const textOf = (page: string) => readFileSync(resolve(root, page), 'utf8');

/** A page's lines outside fenced blocks, and its fenced blocks with the language each opening names. */
function split(text: string): { prose: string[]; blocks: { language: string; text: string }[] } {
  const prose: string[] = [];
  const blocks: { language: string; text: string }[] = [];
  let open: { language: string; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) {
      if (open) blocks.push({ language: open.language, text: open.lines.join('\n') });
      open = open ? undefined : { language: line.slice(3).trim(), lines: [] };
    } else if (open) open.lines.push(line);
    else prose.push(line);
  }
  return { prose, blocks };
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of split(text).prose) {
    const heading = line.match(/^#{1,6} (.*)$/)?.[1];
    if (heading === undefined) continue;
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

test('the README is a front page: at most 400 lines, the rest in docs/', () => {
  expect(textOf('README.md').split('\n').length).toBeLessThanOrEqual(400);
  expect(pages).toContain('docs/errors.md');
  expect(pages).toContain('docs/configuration.md');
});

test.each(generatedTables)('$file is the one its source makes (run npm run docs)', (table) => {
  const { current, generated } = regenerate(table);
  expect(current).toContain(table.markers.begin);
  expect(current, `${table.file} is stale: run npm run docs`).toBe(generated);
});

test('every link in the README, CONTRIBUTING.md and docs/ leads to a file and heading that exist', () => {
  const problems: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const prose = split(textOf(page))
      .prose.join('\n')
      .replace(/`[^`\n]*`/g, '');
    for (const match of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      checked++;
      const [path = '', anchor] = target.split('#');
      const file = path ? resolve(root, dirname(page), path) : resolve(root, page);
      if (!existsSync(file)) {
        problems.push(`${page}: ${target}: no such file`);
      } else if (anchor !== undefined && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) {
        problems.push(`${page}: ${target}: no heading #${anchor} in ${relative(root, file)}`);
      }
    }
  }
  expect(problems).toEqual([]);
  expect(checked).toBeGreaterThan(30);
});

test('every pgsnap command line in the README, CONTRIBUTING.md and docs/ uses a command and flags that its usage lists', () => {
  const usages = new Map<string, string>();
  // `backup start`, `restore start` and `agent install` are commands of their own, with their own usage.
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
  for (const page of pages) {
    const { prose, blocks } = split(textOf(page));
    // Shell blocks, backslash-continued lines read as one; and, in the prose, code spans that give flags.
    const lines = [
      ...blocks
        .filter((block) => ['sh', 'bash', 'ini', ''].includes(block.language))
        .flatMap((block) => block.text.replace(/\\\n\s*/g, ' ').split('\n')),
      ...[...prose.join('\n').matchAll(/`(pgsnap [a-z][^`]*--[^`]*)`/g)].map((span) => span[1]!),
    ];
    for (const line of lines) {
      for (const match of line.matchAll(
        /(?:^|[\s;(|&'=])pgsnap ([a-z][a-z-]*(?: (?:start|install)(?= ))?)([^|;&'#]*)/g,
      )) {
        const command = match[1]!;
        let usage: string;
        try {
          usage = usageOf(command);
        } catch {
          problems.push(`${page}: ${command}: not a pgsnap command (in: ${line.trim()})`);
          continue;
        }
        checked++;
        for (const flag of (match[2] ?? '').matchAll(/(?:^|\s|\[)(--[a-z][a-z-]*)/g)) {
          if (!usage.includes(flag[1]!))
            problems.push(`${page}: ${command} ${flag[1]}: not in its usage (in: ${line.trim()})`);
        }
      }
    }
  }
  expect(problems).toEqual([]);
  expect(checked).toBeGreaterThan(30);
});

/** The source folders the layout rule covers, and the two that hold one file per handler or command by design. */
const sourceFolders = ['agent', 'domain', 'functions', 'infra', 'local', 'bench', 'scripts'];
const onePerFile = new Set(['functions', 'agent/commands']);

function sourceFiles(folder: string): string[] {
  return readdirSync(resolve(root, folder), { withFileTypes: true }).flatMap((entry) => {
    const path = `${folder}/${entry.name}`;
    if (entry.isDirectory()) return entry.name === 'results' ? [] : sourceFiles(path);
    return /\.(ts|mjs)$/.test(entry.name) ? [path] : [];
  });
}

test('no source or bench file is over 450 lines, and no folder holds more than 15 source files', () => {
  const files = sourceFolders.flatMap(sourceFiles);
  const long = files
    .map((file) => ({ file, lines: textOf(file).split('\n').length - 1 }))
    .filter(({ lines }) => lines > 450);
  expect(long, 'split these along their ideas').toEqual([]);
  const perFolder = new Map<string, number>();
  for (const file of files) perFolder.set(dirname(file), (perFolder.get(dirname(file)) ?? 0) + 1);
  const crowded = [...perFolder].filter(([folder, count]) => count > 15 && !onePerFile.has(folder));
  expect(crowded, 'give these folders subfolders by idea').toEqual([]);
});

test('docs/restore.md leads from zero to a first drill: numbered steps, cdk bootstrap and deploy, the stack outputs it names, the kit template the drill launches', () => {
  const text = textOf('docs/restore.md');
  const start = text.indexOf('## From zero to a first drill');
  expect(start, 'the section exists').toBeGreaterThan(0);
  const end = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, end === -1 ? undefined : end);
  const steps = [...section.matchAll(/^(\d+)\. /gm)].map((m) => Number(m[1]));
  expect(steps).toEqual(steps.map((_, i) => i + 1));
  expect(steps.length).toBeGreaterThanOrEqual(6);
  expect(section).toMatch(/`npx cdk bootstrap aws:\/\/\d{12}\/[a-z]+-[a-z]+-\d`/);
  expect(section).toMatch(/`npx cdk deploy pgsnap-[a-z0-9-]+`/);
  expect(section).toMatch(/how many clusters|holds the clusters|holds about \d+ clusters/);
  // Every output the path names is one the source or the DR stack defines.
  const stacks = ['infra/pgsnap-stack.ts', 'infra/dr-stack.ts']
    .map((file) => readFileSync(resolve(root, file), 'utf8'))
    .join('\n');
  for (const output of section.matchAll(/`(\w+(?:Arn|Bucket|Name))`/g)) {
    expect(stacks, `${output[1]} is a CfnOutput of a stack`).toMatch(new RegExp(`\\b${output[1]}: \\[`));
  }
  // The path goes on to a drill in DR, on the DR kit's template.
  expect(section).toMatch(/`dr\.drills`/);
  expect(section).toMatch(/`npx cdk deploy pgsnap-prod-dr`/);
  expect(section).toMatch(/pgsnap-prod-dr-drill-orders-db/);
  // The drill launches the template the kit makes: pgsnap-<environment>-drill-<cluster>.
  expect(section).toMatch(/--launch-template pgsnap-prod-drill-orders-db/);
  expect(readFileSync(resolve(root, 'infra/restore/drill-kit.ts'), 'utf8')).toContain(
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the template literal as written in the kit's source.
    'pgsnap-${environment}-drill-${cluster}',
  );
});
