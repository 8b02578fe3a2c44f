/**
 * Node.js warnings that are not the operator's to act on. pgsnap's stderr is what PostgreSQL writes into its
 * server log for archive_command and restore_command, and what an operator reads after every command: a
 * warning there must be about their system, not about the libraries pgsnap is built from.
 */

/** A warning pgsnap knows of and takes the consequences of itself; every other one is printed as Node.js would. */
const known: Array<{ name: string; message: RegExp }> = [
  {
    // pg's Client reads PGPASSFILE through the pgpass module and warns that pg@9 will stop doing so
    // (node_modules/pg/lib/client.js, pgPassDeprecationNotice), once per process that finds a password there;
    // pg 8 is pinned, and moving to pg 9 replaces that lookup.
    name: 'DeprecationWarning',
    message: /^pgpass support is deprecated/,
  },
  {
    // The AWS SDK for JavaScript, loaded on Node.js 20 (a checkout's bundle; the executables carry Node.js
    // 24), warns that its releases after January 2027 need Node.js 22; docs/building.md says so once, where
    // it is the operator's to act on, instead of in every archive_command's stderr.
    name: 'Warning',
    message: /^NodeVersionSupportWarning: The AWS SDK for JavaScript/,
  },
  {
    // The single executable runs on Node.js features still marked experimental (node:sea, vm's
    // USE_MAIN_CONTEXT_DEFAULT_LOADER in agent/package.mjs's dispatcher, node:zlib's zstd): chosen and tested.
    name: 'ExperimentalWarning',
    message: /single executable|SEA|importModuleDynamically|vm\.|zstd|Zstd/i,
  },
];

/** Whether a warning is one of the known ones, which pgsnap does not print. */
export function isKnownWarning(warning: Error): boolean {
  return known.some((k) => warning.name === k.name && k.message.test(warning.message));
}

/**
 * Replaces Node.js's own warning printer (the one 'warning' listener it installs, which --no-warnings would
 * remove) with one that prints the same line for every warning but the known ones. Call first thing.
 */
export function quietKnownWarnings(): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (isKnownWarning(warning)) return;
    const code = (warning as Error & { code?: string }).code;
    process.stderr.write(
      `(node:${process.pid}) ${code ? `[${code}] ` : ''}${warning.name}: ${warning.message}\n`,
    );
  });
}
