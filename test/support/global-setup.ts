/** Builds the bundled agent once, so tests run the same file that is installed on a host. */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['agent/build.mjs'], { stdio: 'inherit' });
}
