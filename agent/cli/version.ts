/** `pgsnap --version`: pgsnap's version, the Node.js it runs on, and the WAL codec that Node.js gives it. */
import { zstdCodec } from '#domain/repository/zstd';
import { singleExecutable } from '../host/self.ts';
import { agentVersion } from '../version.ts';

export function versionText(): string {
  // Set by the single executable's dispatcher (agent/package.mjs): whether V8 took the code cache made for it.
  const cache = (globalThis as { __pgsnapCodeCache?: string }).__pgsnapCodeCache;
  const how = singleExecutable()
    ? `single executable, V8 code cache ${cache ?? 'none'}`
    : `running ${process.argv[1]}`;
  return [
    `pgsnap ${agentVersion}`,
    `Node.js ${process.version} (${how}, ${process.platform}-${process.arch})`,
    `WAL codec: zstd from ${zstdCodec().source}`,
  ].join('\n');
}
