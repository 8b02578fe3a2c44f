// Bundles the agent into dist/: pgsnap.mjs, what `bin` points at and what is installed on a host, and one
// chunk per command loaded on demand, so that a command starts without parsing the others' dependencies
// (archive_command and restore_command start pgsnap once per WAL file).
//
// Files are written under temporary names and renamed into place, chunks before the entry point, so that
// a pgsnap started while another build runs (parallel test runs) never reads a partial file; chunks of
// earlier builds are removed only once they are old enough that no running pgsnap still loads them.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
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
  plugins: [notCloudflare],
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
const entry = resolve('dist/pgsnap.mjs');
const files = result.outputFiles.sort((a, b) => (a.path === entry) - (b.path === entry));
for (const file of files) {
  mkdirSync(dirname(file.path), { recursive: true });
  const temporary = `${file.path}.tmp-${process.pid}`;
  writeFileSync(temporary, file.contents, { mode: file.path === entry ? 0o755 : 0o644 });
  renameSync(temporary, file.path);
}
writeAgentTarball(files);
rmSync(resolve('dist/pgsnap-agent.mjs'), { force: true });
const current = new Set(files.map((file) => file.path));
const chunks = resolve('dist/chunks');
for (const name of readdirSync(chunks)) {
  const path = join(chunks, name);
  if (!current.has(path) && Date.now() - statSync(path).mtimeMs > 3_600_000) rmSync(path, { force: true });
}

/**
 * The agent for database hosts, dist/pgsnap-agent.tar.gz: this build's split files under lib/pgsnap/ and
 * bin/pgsnap, a symlink to lib/pgsnap/pgsnap.mjs, so that `tar -xzf pgsnap-agent.tar.gz -C /usr/local`
 * installs it. Node.js resolves the symlink of the main module, so the chunks load from beside the real file;
 * each command then parses only its own code, which archive_command and restore_command, run once per WAL
 * file, would otherwise pay for at every start (a single 3.6 MB file took twice as long to start).
 * Chunks come before the entry point, and the symlink last, so an extraction over a running install never
 * points at a file whose chunks are not there yet.
 */
function writeAgentTarball(outputs) {
  // No entries for bin/ and lib/ themselves: extracting must not change the modes of /usr/local's directories.
  const entries = [
    { name: 'lib/pgsnap/', type: '5', mode: 0o755 },
    { name: 'lib/pgsnap/chunks/', type: '5', mode: 0o755 },
  ];
  for (const file of outputs) {
    const name = `lib/pgsnap/${relative(resolve('dist'), file.path)}`;
    entries.push({ name, type: '0', mode: file.path === entry ? 0o755 : 0o644, contents: file.contents });
  }
  entries.push({ name: 'bin/pgsnap', type: '2', mode: 0o777, link: '../lib/pgsnap/pgsnap.mjs' });
  const blocks = [];
  for (const e of entries) {
    blocks.push(tarHeader(e));
    if (e.contents) {
      blocks.push(Buffer.from(e.contents));
      blocks.push(Buffer.alloc((512 - (e.contents.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  const path = resolve('dist/pgsnap-agent.tar.gz');
  writeFileSync(`${path}.tmp-${process.pid}`, gzipSync(Buffer.concat(blocks), { level: 9 }));
  renameSync(`${path}.tmp-${process.pid}`, path);
}

/** A POSIX ustar header, owned by root. */
function tarHeader({ name, type, mode, contents, link }) {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512);
  const field = (offset, length, value) => header.write(value, offset, length, 'utf8');
  const octal = (offset, length, value) =>
    field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  field(0, 100, name);
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, contents ? contents.length : 0);
  octal(136, 12, Math.floor(Date.now() / 1000));
  field(148, 8, '        ');
  field(156, 1, type);
  if (link) field(157, 100, link);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return header;
}
