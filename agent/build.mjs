// Bundles the agent into dist/: pgsnap.mjs, what `bin` points at and what is installed on a host, and one
// chunk per command loaded on demand, so that a command starts without parsing the others' dependencies
// (archive_command and restore_command start pgsnap once per WAL file).
//
// Files are written under temporary names and renamed into place, chunks before the entry point, so that
// a pgsnap started while another build runs (parallel test runs) never reads a partial file; chunks of
// earlier builds are removed only once they are old enough that no running pgsnap still loads them.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

// pg asks, when it is loaded, whether it runs in a Cloudflare Worker by constructing a `Response`; on Node.js 20
// touching that global loads the whole bundled fetch implementation (undici), 20-80 ms on these machines in every
// process that connects (end, the holder). The agent only ever runs on Node.js.
const notCloudflare = {
  name: 'pg-not-cloudflare',
  setup(build) {
    build.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const probe = "typeof Response === 'function'";
      if (!source.includes(probe))
        throw new Error(`${args.path}: the Cloudflare probe changed; review this plugin`);
      return { contents: source.replace(probe, 'false'), loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // pg is CommonJS; give every chunk a require() for the modules it loads that way.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __pgsnapCreateRequire } from 'node:module';\nconst require = __pgsnapCreateRequire(import.meta.url);",
  },
  external: ['pg-native'],
  mainFields: ['module', 'main'],
  plugins: [notCloudflare],
  // Less to parse at every start (three starts per begin+end); names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  write: false,
};

const result = await build({
  ...common,
  entryPoints: { pgsnap: 'agent/cli/main.ts', demo: 'local/demo.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
});
// The CDK app's synthesis for `pgsnap demo`, loaded by path at run time so that the agent does not carry
// aws-cdk-lib (it comes from the project's node_modules: the demo runs from a checkout). Not for hosts.
const synth = await build({
  ...common,
  entryPoints: ['infra/local-run/synthesize.ts'],
  outfile: 'dist/local-synth.mjs',
  external: [...common.external, 'aws-cdk-lib', 'constructs', 'cdk-nag'],
});
const entry = resolve('dist/pgsnap.mjs');
const files = result.outputFiles.sort((a, b) => (a.path === entry) - (b.path === entry));
for (const file of [...synth.outputFiles, ...files]) {
  mkdirSync(dirname(file.path), { recursive: true });
  const temporary = `${file.path}.tmp-${process.pid}`;
  writeFileSync(temporary, file.contents, { mode: file.path === entry ? 0o755 : 0o644 });
  renameSync(temporary, file.path);
}
// The demo is not for hosts (agent/cli/main.ts loads it by path when it is there).
writeAgentTarball(files.filter((file) => file.path !== resolve('dist/demo.mjs')));
rmSync(resolve('dist/pgsnap-agent.mjs'), { force: true });
const current = new Set(files.map((file) => file.path));
const chunks = resolve('dist/chunks');
for (const name of readdirSync(chunks)) {
  const path = join(chunks, name);
  if (!current.has(path) && Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { force: true });
}

/**
 * The one module the bundle cannot hold: the zstd codec, a native addon that wal-push and wal-fetch load at
 * run time. Its loader and the prebuilt binary npm installed here (for this machine's platform: build on an
 * arm64 machine for arm64 hosts) go under lib/pgsnap/node_modules, where the chunks' require finds them.
 * Returns the names to pack, directories first.
 */
function stageNativeModules(stage) {
  const scope = resolve('node_modules/@mongodb-js');
  const names = ['lib/pgsnap/node_modules/', 'lib/pgsnap/node_modules/@mongodb-js/'];
  mkdirSync(join(stage, 'lib/pgsnap/node_modules/@mongodb-js'), { recursive: true });
  const packages = readdirSync(scope).filter((name) => name === 'zstd' || name.startsWith('zstd-'));
  if (!packages.some((name) => name.startsWith('zstd-'))) {
    throw new Error('no prebuilt @mongodb-js/zstd binary in node_modules for this platform: run npm install');
  }
  for (const name of packages) {
    const dir = `lib/pgsnap/node_modules/@mongodb-js/${name}/`;
    mkdirSync(join(stage, dir));
    names.push(dir);
    for (const file of readdirSync(join(scope, name))) {
      if (name === 'zstd' && !['package.json', 'index.js', 'bindings.js', 'LICENSE.md'].includes(file))
        continue;
      writeFileSync(join(stage, dir, file), readFileSync(join(scope, name, file)), { mode: 0o644 });
      names.push(`${dir}${file}`);
    }
  }
  for (const dir of names.filter((n) => n.endsWith('/'))) chmodSync(join(stage, dir), 0o755);
  return names;
}

/**
 * The agent for database hosts, dist/pgsnap-agent.tar.gz: this build's split files under lib/pgsnap/ and
 * bin/pgsnap, a symlink to lib/pgsnap/pgsnap.mjs, so that `tar -xzf pgsnap-agent.tar.gz -C /usr/local`
 * installs it. Node.js resolves the symlink of the main module, so the chunks load from beside the real file;
 * each command then parses only its own code, which archive_command and restore_command, run once per WAL
 * file, would otherwise pay for at every start (a single 3.6 MB file took twice as long to start).
 * The codec and the chunks come before the entry point, and the symlink last, so an extraction over a
 * running install never points at a file whose chunks are not there yet. Packed by the system tar (GNU or
 * bsdtar), owned by root.
 */
function writeAgentTarball(outputs) {
  const stage = resolve(`dist/.agent-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  const lib = join(stage, 'lib/pgsnap');
  mkdirSync(join(lib, 'chunks'), { recursive: true });
  mkdirSync(join(stage, 'bin'));
  for (const dir of [lib, join(lib, 'chunks')]) chmodSync(dir, 0o755);
  const names = ['lib/pgsnap/', 'lib/pgsnap/chunks/', ...stageNativeModules(stage)];
  for (const file of outputs) {
    const name = `lib/pgsnap/${relative(resolve('dist'), file.path)}`;
    writeFileSync(join(stage, name), file.contents);
    chmodSync(join(stage, name), file.path === entry ? 0o755 : 0o644);
    names.push(name);
  }
  symlinkSync('../lib/pgsnap/pgsnap.mjs', join(stage, 'bin/pgsnap'));
  names.push('bin/pgsnap');
  // No entries for bin/ and lib/ themselves (--no-recursion, each name listed): extracting must not change
  // the modes of /usr/local's directories.
  const path = resolve('dist/pgsnap-agent.tar.gz');
  try {
    execFileSync('tar', [
      '--create',
      '--gzip',
      `--file=${path}.tmp-${process.pid}`,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--no-recursion',
      `--directory=${stage}`,
      ...names,
    ]);
    renameSync(`${path}.tmp-${process.pid}`, path);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
