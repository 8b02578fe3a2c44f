/**
 * The supported runtimes that docs/building.md (and, in short, the README) state agree with what is
 * built: the host executables carry the same Node.js release line the Lambdas run on, and the checkout's
 * `engines` admits it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { lambdaBundling } from '../../infra/lambda/handler-function.ts';

const project = resolve(import.meta.dirname, '../..');

it('the host executables and the Lambdas are on the same Node.js release line, which engines admits', async () => {
  const binaries = pathToFileURL(resolve(project, 'agent/node-binaries.mjs')).href;
  const { nodeVersion } = (await import(binaries)) as { nodeVersion: string };
  const [major, minor] = nodeVersion.split('.').map(Number) as [number, number];
  expect(major % 2, 'an LTS line is even').toBe(0);
  expect(lambdaBundling.target).toBe(`node${major}`);
  const building = readFileSync(resolve(project, 'docs/building.md'), 'utf8');
  expect(building).toContain(`Node.js ${nodeVersion}`);
  expect(building).toContain(`\`nodejs${major}.x\``);
  expect(readFileSync(resolve(project, 'README.md'), 'utf8')).toContain(`carry Node.js ${major} `);
  const engines = (
    JSON.parse(readFileSync(resolve(project, 'package.json'), 'utf8')) as {
      engines: { node: string };
    }
  ).engines.node;
  const floor = /^>=(\d+)\.(\d+)$/.exec(engines);
  expect(floor, `engines.node is a lower bound: ${engines}`).not.toBeNull();
  expect(major * 1000 + minor).toBeGreaterThanOrEqual(Number(floor![1]) * 1000 + Number(floor![2]));
});
