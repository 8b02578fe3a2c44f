/** Opens a repository from its URL and a cluster name. */
import { validateClusterName } from '../ids.ts';
import { FileStore } from './file-store.ts';
import { parseRepositoryUrl, type RepositoryLocation } from './location.ts';
import { Repository } from './repository.ts';
import type { ObjectStore } from './store.ts';

export async function openStore(location: RepositoryLocation): Promise<ObjectStore> {
  if (location.kind === 'file') return new FileStore(location);
  // Loaded on demand: the AWS SDK is most of the agent's start-up time, and file:// never needs it.
  const { S3Store } = await import('./s3-store.ts');
  return new S3Store(location);
}

export async function openRepository(url: string, cluster: string): Promise<Repository> {
  const location = parseRepositoryUrl(url);
  return new Repository(await openStore(location), validateClusterName(cluster));
}
