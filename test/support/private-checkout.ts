/**
 * A copy of this checkout where the server's user cannot reach it, as a clone
 * under /root (mode 0700 on Debian) is: dist/ copied, the rest of the
 * checkout linked, and Node.js itself linked (or copied) under the same
 * private directory, as nvm installs it under the home directory.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const project = resolve(import.meta.dirname, '../..');

export interface PrivateCheckout {
  /** The directory of mode 0700 everything is under, like /root. */
  home: string;
  /** Node.js, under home (like ~/.nvm/versions/node/vX/bin/node). */
  node: string;
  /** The checkout's dist/pgsnap.mjs, under home. */
  bin: string;
  destroy(): void;
}

export function privateCheckout(): PrivateCheckout {
  const home = mkdtempSync(join(tmpdir(), 'pgsnap-private-home-'));
  chmodSync(home, 0o700);
  const checkout = join(home, 'pgsnap');
  mkdirSync(checkout);
  cpSync(join(project, 'dist'), join(checkout, 'dist'), { recursive: true, preserveTimestamps: true });
  for (const entry of readdirSync(project)) {
    if (entry !== 'dist' && entry !== '.git') symlinkSync(join(project, entry), join(checkout, entry));
  }
  const nodeDir = join(home, '.nvm', 'bin');
  mkdirSync(nodeDir, { recursive: true });
  const node = join(nodeDir, 'node');
  try {
    linkSync(process.execPath, node);
  } catch {
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
  }
  return {
    home,
    node,
    bin: join(checkout, 'dist', 'pgsnap.mjs'),
    destroy: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** Whether `user` can reach `path` (every directory on the way searchable): the premise of the tests. */
export function reachableBy(user: string, path: string): boolean {
  return spawnSync('runuser', ['-u', user, '--', 'test', '-x', path]).status === 0;
}
