/**
 * The executable project's global setup: builds the single executables (`npm run package`'s second half;
 * the bundle is built by global-setup.ts) once for the whole run. agent/package.mjs leaves an executable that
 * is up to date as it is, so the host-install test's own build afterwards costs nothing.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['agent/package.mjs'], { stdio: 'inherit' });
}
