// `npm run package`: the agent for database hosts as two single executables, dist/pgsnap-linux-x64 and
// dist/pgsnap-linux-arm64 (Node.js single executable applications): the agent bundled into one CommonJS
// script, that script prepared as a blob by the same Node.js the executable carries, and the blob injected
// into a copy of that Node.js with postject. Nothing else is installed on a host.
//
// The Node.js binaries come from the npm registry, pinned by version and integrity (agent/node-binaries.mjs).
//
// The V8 code cache halves the start of the executable (the whole bundle is otherwise compiled at every
// start). It must be made by the Node.js of the target's architecture: the arm64 blob is made by the arm64
// Node.js under qemu-aarch64-static where it is installed (apt-get install qemu-user-static
// libc6-arm64-cross libstdc++6-arm64-cross), else without a code cache, which this script says.
//
// Each executable is written under a temporary name and renamed into place; when the bundle, the Node.js
// and the code cache choice are those of the executable already there, it is left as it is. The bundle,
// blobs and configurations in the cache carry this process's pid: two builds at once do not share them.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { cache, nodeVersion, pinnedNode } from './node-binaries.mjs';

const require = createRequire(import.meta.url);
/** Node.js's marker in its binary that a blob is injected (the documented postject sentinel). */
const sentinelFuse = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

process.chdir(dirname(dirname(fileURLToPath(import.meta.url))));
mkdirSync(cache, { recursive: true });
mkdirSync('dist', { recursive: true });
const bundled = join(cache, `pgsnap-${process.pid}.cjs`);
const script = await bundle();
const targets = [
  { arch: 'x64', node: pinnedNode('x64') },
  { arch: 'arm64', node: pinnedNode('arm64') },
];
for (const target of targets) {
  const runner = blobRunner(target);
  const useCodeCache = runner !== undefined;
  if (!useCodeCache) {
    console.warn(
      `agent/package.mjs: no way to run the ${target.arch} Node.js here (for arm64: apt-get install ` +
        'qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross); ' +
        `dist/pgsnap-linux-${target.arch} is built without a V8 code cache and starts slower`,
    );
  }
  const executable = resolve(`dist/pgsnap-linux-${target.arch}`);
  const key = createHash('sha256')
    .update(script)
    .update(`${target.arch} ${nodeVersion} ${useCodeCache}`)
    .digest('hex');
  const keyFile = `${executable}.key`;
  if (existsSync(executable) && existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key) {
    console.log(`dist/pgsnap-linux-${target.arch} is up to date`);
    continue;
  }
  const blob = writeBlob(target, runner ?? nativeRunner(), useCodeCache);
  const temporary = `${executable}.tmp-${process.pid}`;
  try {
    copyFileSync(target.node, temporary);
    chmodSync(temporary, 0o755);
    const injected = spawnSync(
      process.execPath,
      [
        require.resolve('postject/dist/cli.js'),
        temporary,
        'NODE_SEA_BLOB',
        blob,
        '--sentinel-fuse',
        sentinelFuse,
      ],
      { encoding: 'utf8' },
    );
    // postject's ELF library warns about every note section it cannot name; only a failure is worth showing.
    if (injected.status !== 0)
      throw new Error(`postject failed on ${temporary}:\n${injected.stdout}${injected.stderr}`);
    renameSync(temporary, executable);
    writeFileSync(keyFile, key);
  } finally {
    rmSync(temporary, { force: true });
    rmSync(blob, { force: true });
  }
  console.log(
    `dist/pgsnap-linux-${target.arch}: Node.js ${nodeVersion}, ${useCodeCache ? 'with' : 'without'} a V8 code cache`,
  );
}
rmSync(bundled, { force: true });

/**
 * The agent as one CommonJS script (a single executable's main script cannot be split, and is CommonJS).
 * `import.meta.url` is the executable's own file URL: the code that resolves files beside itself finds
 * none there, and says so (pgsnap demo).
 */
async function bundle() {
  const outfile = bundled;
  await build({
    entryPoints: ['agent/cli/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target: `node${nodeVersion.split('.')[0]}`,
    format: 'cjs',
    external: ['pg-native'],
    mainFields: ['module', 'main'],
    define: { 'import.meta.url': '__pgsnapUrl' },
    banner: { js: "const __pgsnapUrl = require('node:url').pathToFileURL(process.execPath).href;" },
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: 'warning',
  });
  return readFileSync(outfile);
}

/** This machine's own pinned Node.js, for a blob without a code cache (which any architecture may make). */
function nativeRunner() {
  const node = targets.find((target) => target.arch === process.arch)?.node;
  if (!node) throw new Error(`agent/package.mjs builds on Linux x64 or arm64, not ${process.arch}`);
  return [node];
}

/** How to run the target's own Node.js here, natively or under qemu-user; undefined when it cannot be run. */
function blobRunner(target) {
  if (target.arch === process.arch) return [target.node];
  const qemu = { arm64: 'qemu-aarch64-static', x64: 'qemu-x86_64-static' }[target.arch];
  const prefix = { arm64: '/usr/aarch64-linux-gnu', x64: '/usr/x86_64-linux-gnu' }[target.arch];
  const runner = [qemu, '-L', prefix, target.node];
  const probe = spawnSync(runner[0], [...runner.slice(1), '-e', '0'], { stdio: 'ignore' });
  return probe.status === 0 ? runner : undefined;
}

/** The blob of the single executable, made by `runner` (a Node.js of the pinned version), in the cache. */
function writeBlob(target, runner, useCodeCache) {
  const blob = join(cache, `pgsnap-linux-${target.arch}-${process.pid}.blob`);
  const config = join(cache, `sea-${target.arch}-${process.pid}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      main: bundled,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache,
    }),
  );
  try {
    execFileSync(runner[0], [...runner.slice(1), '--experimental-sea-config', config], { stdio: 'ignore' });
  } finally {
    rmSync(config, { force: true });
  }
  return blob;
}
