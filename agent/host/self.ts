/**
 * How pgsnap starts itself again: for PostgreSQL (archive_command and
 * restore_command lines) and for its own background processes (the holder,
 * the pusher, the prefetcher).
 *
 * Run as `node pgsnap.mjs`, that is this Node.js and this script. Run as a
 * single executable (dist/pgsnap-linux-*), it is the executable alone: Node.js
 * then repeats the executable's path in process.argv[1] where a script would
 * be (src/node_sea.cc, FixupArgsForSEA), which must not be passed again.
 */
import { isSea } from 'node:sea';

/** The single executable, or Node.js with the bundle: both by absolute path (PostgreSQL's PATH is not ours). */
export function selfCommand(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
}

/** The program and arguments that run `pgsnap <args>` as this process runs, Node.js options included. */
export function selfSpawn(args: string[]): [string, string[]] {
  return isSea()
    ? [process.execPath, args]
    : [process.execPath, [...process.execArgv, process.argv[1]!, ...args]];
}

/** Whether this is the single executable, which carries its own Node.js and none of the checkout. */
export const singleExecutable = isSea;
