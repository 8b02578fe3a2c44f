/** `pgsnap --version`: pgsnap's version, the Node.js it runs on, and the WAL codec that Node.js gives it. */
import { zstdCodec } from '#domain/repository/zstd';
import { version } from '../../package.json';
import { singleExecutable } from './self.ts';

export function versionText(): string {
  const how = singleExecutable() ? 'single executable' : `running ${process.argv[1]}`;
  return [
    `pgsnap ${version}`,
    `Node.js ${process.version} (${how}, ${process.platform}-${process.arch})`,
    `WAL codec: zstd from ${zstdCodec().source}`,
  ].join('\n');
}
