// The last step of `npm test`: in CI (CI is set), the unit project again on the Node.js 24 that the single
// executables carry (agent/node-binaries.mjs, pinned and fetched for `npm run package`), so both Node.js
// lines the README names are tested: the machine's own (Node.js 20, the oldest package.json allows) runs the
// whole suite, Node.js 24 the unit project and, through the executable, the CLI test files. Outside CI it
// says that it skipped, and how to run it.
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinnedNode } from '../agent/node-binaries.mjs';

const project = resolve(dirname(fileURLToPath(import.meta.url)), '..');
if (!process.env.CI) {
  console.log(
    'scripts/test-node24.mjs: skipped outside CI (CI=1 npm test, or CI=1 node scripts/test-node24.mjs)',
  );
  process.exit(0);
}
const node = pinnedNode(process.arch);
console.log(`scripts/test-node24.mjs: the unit project on ${node}`);
const run = spawnSync(node, ['node_modules/vitest/vitest.mjs', 'run', '--project', 'unit'], {
  cwd: project,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
