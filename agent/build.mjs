// Bundles the agent into dist/: pgsnap.mjs, what `bin` points at and what is installed on a host, and one
// chunk per command loaded on demand, so that a command starts without parsing the others' dependencies
// (archive_command and restore_command start pgsnap once per WAL file).
//
// Files are written under temporary names and renamed into place, chunks before the entry point, so that
// a pgsnap started while another build runs (parallel test runs) never reads a partial file; chunks of
// earlier builds are removed only once they are old enough that no running pgsnap still loads them.
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { build } from 'esbuild';

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
  // Less to parse at every start (three starts per begin+end); names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  write: false,
};

const result = await build({
  ...common,
  entryPoints: { pgsnap: 'agent/cli.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
});
// The same agent as one file, for database hosts: `install -m 755 dist/pgsnap-agent.mjs /usr/local/bin/pgsnap`.
const single = await build({ ...common, entryPoints: ['agent/cli.ts'], outfile: 'dist/pgsnap-agent.mjs' });
// The CDK app's synthesis for `pgsnap demo`, loaded by path at run time so that neither build above carries
// aws-cdk-lib (it comes from the project's node_modules: the demo runs from a checkout).
const synth = await build({
  ...common,
  entryPoints: ['infra/local-synth.ts'],
  outfile: 'dist/local-synth.mjs',
  external: [...common.external, 'aws-cdk-lib', 'constructs', 'cdk-nag'],
});
const entry = resolve('dist/pgsnap.mjs');
const files = [...single.outputFiles, ...synth.outputFiles, ...result.outputFiles].sort(
  (a, b) => (a.path === entry) - (b.path === entry),
);
for (const file of files) {
  mkdirSync(dirname(file.path), { recursive: true });
  const temporary = `${file.path}.tmp-${process.pid}`;
  const executable = file.path === entry || file.path.endsWith('pgsnap-agent.mjs');
  writeFileSync(temporary, file.contents, { mode: executable ? 0o755 : 0o644 });
  renameSync(temporary, file.path);
}
const current = new Set(files.map((file) => file.path));
const chunks = resolve('dist/chunks');
for (const name of readdirSync(chunks)) {
  const path = join(chunks, name);
  if (!current.has(path) && Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { force: true });
}
