// `npm run package`: the agent for database hosts as two single executables, dist/pgsnap-linux-x64 and
// dist/pgsnap-linux-arm64 (Node.js single executable applications): a small dispatcher as the executable's
// script, each command bundled as an asset of its own (see bundle()), the blob prepared by the same Node.js
// the executable carries, and injected into a copy of that Node.js with postject. Nothing else is
// installed on a host.
//
// The Node.js binaries come from the npm registry, pinned by version and integrity (agent/node-binaries.mjs).
//
// Each asset carries a V8 code cache, which roughly halves the start (without one, every start compiles the
// command's code). V8 takes only a cache made by its own build for its own architecture: the arm64 caches
// are made by the arm64 Node.js under qemu-aarch64-static where it is installed (apt-get install
// qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross), else left out, which this script says.
//
// Each executable is written under a temporary name and renamed into place; when the assets, the Node.js
// and the code cache choice are those of the executable already there, it is left as it is. The files in
// the cache are in a directory of this process's: two builds at once do not share them.
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
/** An asset runs as CommonJS runs a module: wrapped in a function of these. */
const wrapperHead = '(function (exports, require, module, __filename, __dirname) {';
const wrapperTail = '\n})';

process.chdir(dirname(dirname(fileURLToPath(import.meta.url))));
mkdirSync(cache, { recursive: true });
mkdirSync('dist', { recursive: true });
const work = join(cache, `build-${process.pid}`);
mkdirSync(work, { recursive: true });
const names = await bundle();
const script = Buffer.concat(
  [...names.map((name) => `${name}.cjs`), 'dispatch.cjs'].map((file) => readFileSync(join(work, file))),
);
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
rmSync(work, { recursive: true, force: true });

/**
 * What a single executable runs is one CommonJS script (it cannot be split, nor an ES module), and its start
 * grows with the size of that script: the whole agent (3.5 MB) took 120 ms where wal-push's code alone
 * (0.9 MB) took 70, a bare Node.js 60. So the executable's script is a dispatcher, and each command is an
 * asset of its own: agent/cli/main.ts bundled with that one command's code (every other dynamic import of
 * main.ts is a stub), so that a process loads and compiles only what its command runs, and errors, exit
 * codes and output are the same code as in the bundle. `main` is the one with no command (--help,
 * --version, an unknown command). `import.meta.url` is the executable's own file URL: the code that
 * resolves files beside itself finds none there, and says so (pgsnap demo). Returns the assets' names.
 */
async function bundle() {
  const source = readFileSync('agent/cli/main.ts', 'utf8');
  const kept = {};
  for (const [, path] of source.matchAll(/import\('(\.{1,2}\/[\w/.-]+\.ts)'\)/g)) {
    const asset = path.startsWith('../commands/')
      ? commandAsset(path.slice('../commands/'.length, -3))
      : ({ '../session/holder.ts': '__holder', '../wal/archiver.ts': '__wal-archiver' }[path] ??
        { '../wal/prefetcher.ts': '__wal-prefetcher', './version.ts': 'main' }[path]);
    if (!asset)
      throw new Error(`agent/cli/main.ts imports ${path}: say which asset of the executable holds it`);
    kept[path] = asset;
  }
  const names = ['main', ...new Set(Object.values(kept).filter((name) => name !== 'main'))];
  await Promise.all(
    names.map((name) =>
      build({
        entryPoints: ['agent/cli/main.ts'],
        outfile: join(work, `${name}.cjs`),
        bundle: true,
        platform: 'node',
        target: `node${nodeVersion.split('.')[0]}`,
        format: 'cjs',
        external: ['pg-native'],
        mainFields: ['module', 'main'],
        define: { 'import.meta.url': '__pgsnapUrl' },
        banner: { js: "const __pgsnapUrl = require('node:url').pathToFileURL(process.execPath).href;" },
        plugins: [onlyAsset(name, kept)],
        minifyWhitespace: true,
        minifySyntax: true,
        logLevel: 'warning',
      }),
    ),
  );
  writeFileSync(join(work, 'dispatch.cjs'), dispatcher(names));
  return names;
}

/**
 * The asset of a command file: the command's name in argv, which the dispatcher picks by. The three forms of
 * `pgsnap restore` (start, --restore-id, and prepare) are one asset.
 */
function commandAsset(file) {
  return file.startsWith('restore-') ? 'restore' : file;
}

/** Makes every dynamic import of agent/cli/main.ts that is not `name`'s an empty module. */
function onlyAsset(name, kept) {
  return {
    name: 'pgsnap-only-asset',
    setup(build) {
      build.onResolve({ filter: /^\.{1,2}\// }, (args) => {
        if (args.kind !== 'dynamic-import' || !args.importer.endsWith('agent/cli/main.ts')) return undefined;
        return kept[args.path] === name ? undefined : { path: args.path, namespace: 'pgsnap-stub' };
      });
      build.onLoad({ filter: /.*/, namespace: 'pgsnap-stub' }, () => ({
        contents: 'export {};',
        loader: 'js',
      }));
    },
  };
}

/**
 * The executable's script: runs the asset of the command named in argv (process.argv[1] is the executable
 * again, see agent/host/self.ts), with the V8 code cache made for it at build time when there is one. The
 * asset is wrapped as CommonJS wraps a module; `require` is the executable's, which loads built-in modules
 * only, all the asset needs.
 */
function dispatcher(names) {
  return `'use strict';
const { getAsset } = require('node:sea');
const { Script, constants } = require('node:vm');
const names = new Set(${JSON.stringify(names)});
const name = names.has(process.argv[2]) ? process.argv[2] : 'main';
const source = ${JSON.stringify(wrapperHead)} + getAsset(name + '.cjs', 'utf8') + ${JSON.stringify(wrapperTail)};
let cachedData;
try {
  cachedData = Buffer.from(getAsset(name + '.cache'));
} catch {}
// import() of a built-in module (esbuild leaves those as they are) goes to Node.js's own loader.
const script = new Script(source, {
  filename: 'pgsnap:' + name,
  cachedData,
  importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
globalThis.__pgsnapCodeCache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
const asset = { exports: {} };
script.runInThisContext()(asset.exports, require, asset, process.execPath, require('node:path').dirname(process.execPath));
`;
}

/** Makes `<asset>.cache` beside each asset with `runner`, the target's Node.js: V8 takes only its own. */
function writeCodeCaches(runner, names) {
  const generator = join(work, 'code-cache.cjs');
  writeFileSync(
    generator,
    `const { readFileSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');
for (const name of ${JSON.stringify(names)}) {
  const source = ${JSON.stringify(wrapperHead)} + readFileSync(${JSON.stringify(work)} + '/' + name + '.cjs', 'utf8') + ${JSON.stringify(wrapperTail)};
  writeFileSync(${JSON.stringify(work)} + '/' + name + '.cache', new Script(source, { filename: 'pgsnap:' + name }).createCachedData());
}
`,
  );
  execFileSync(runner[0], [...runner.slice(1), generator], { stdio: 'inherit' });
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
  for (const name of names) rmSync(join(work, `${name}.cache`), { force: true });
  if (useCodeCache) writeCodeCaches(runner, names);
  const blob = join(work, `pgsnap-linux-${target.arch}.blob`);
  const config = join(work, `sea-${target.arch}.json`);
  const assets = {};
  for (const name of names) {
    assets[`${name}.cjs`] = join(work, `${name}.cjs`);
    if (useCodeCache) assets[`${name}.cache`] = join(work, `${name}.cache`);
  }
  writeFileSync(
    config,
    JSON.stringify({
      main: join(work, 'dispatch.cjs'),
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: false,
      assets,
    }),
  );
  execFileSync(runner[0], [...runner.slice(1), '--experimental-sea-config', config], { stdio: 'ignore' });
  return blob;
}
