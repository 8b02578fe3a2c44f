/** Opens a repository from its URL and a cluster name. */
import type { AwsTimeouts } from '../aws-timeouts.ts';
import { validateClusterName } from '../ids.ts';
import { FileStore } from './file-store.ts';
import { parseRepositoryUrl, type RepositoryLocation } from './location.ts';
import { Repository } from './repository.ts';
import type { S3StoreOptions } from './s3-store.ts';
import type { ObjectStore } from './store.ts';

export interface OpenOptions {
  /** Limits on each S3 call (the SDK's would wait for ever on a silent endpoint). */
  timeouts?: AwsTimeouts;
  /** For s3://: credentials other than the SDK's default chain (a host found by tags: the vended ones). */
  credentials?: S3StoreOptions['credentials'];
}

export async function openStore(
  location: RepositoryLocation,
  options: OpenOptions = {},
): Promise<ObjectStore> {
  if (location.kind === 'file') return new FileStore(location);
  // Loaded on demand: the AWS SDK is most of the agent's start-up time, and file:// never needs it.
  const { S3Store } = await import('./s3-store.ts');
  return new S3Store(location, {
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  });
}

export async function openRepository(
  url: string,
  cluster: string,
  options: OpenOptions = {},
): Promise<Repository> {
  const location = parseRepositoryUrl(url);
  return new Repository(await openStore(location, options), validateClusterName(cluster));
}
