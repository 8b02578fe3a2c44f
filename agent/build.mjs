// Bundles the agent into one file, dist/pgsnap.mjs: what `bin` points at and what is installed on a host.
import { chmodSync } from 'node:fs';
import { build } from 'esbuild';

await build({
  entryPoints: ['agent/cli.ts'],
  outfile: 'dist/pgsnap.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // pg is CommonJS; give the bundle a require() for the modules it loads that way.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __pgsnapCreateRequire } from 'node:module';\nconst require = __pgsnapCreateRequire(import.meta.url);",
  },
  external: ['pg-native'],
  // Less to parse at every start (three starts per begin+end); names stay readable in stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
chmodSync('dist/pgsnap.mjs', 0o755);
