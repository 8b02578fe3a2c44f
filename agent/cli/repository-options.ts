/** Which repository a command uses: --repo / PGSNAP_REPO and --cluster / PGSNAP_CLUSTER, validated once here. */

import { UsageError } from '#domain/errors';
import { validateClusterName } from '#domain/ids';
import type { Repository } from '#domain/repository/repository';

export interface RepositoryValues {
  repo?: string;
  cluster?: string;
}

export interface RepositoryChoice {
  url: string;
  cluster: string;
}

/** The configured repository, or undefined when none is; a repository without a cluster name is a usage error. */
export function repositoryChoice(
  values: RepositoryValues,
  env: NodeJS.ProcessEnv = process.env,
): RepositoryChoice | undefined {
  const url = values.repo ?? env.PGSNAP_REPO;
  if (url === undefined || url === '') return undefined;
  const cluster = values.cluster ?? env.PGSNAP_CLUSTER;
  if (!cluster) {
    throw new UsageError(
      `a repository needs a cluster name: give --cluster NAME (or PGSNAP_CLUSTER), ` +
        'the name this cluster has in the repository, e.g. --cluster orders-db',
    );
  }
  return { url, cluster: validateClusterName(cluster) };
}

export function requireRepositoryChoice(command: string, values: RepositoryValues): RepositoryChoice {
  const choice = repositoryChoice(values);
  if (!choice) {
    throw new UsageError(
      `pgsnap ${command}: no repository: give --repo s3://bucket/prefix or --repo file:///dir ` +
        '(or set PGSNAP_REPO), and --cluster NAME. PostgreSQL runs archive_command and restore_command ' +
        `without your environment, so put both flags in the command, e.g. pgsnap ${command} ... ` +
        '--repo s3://bucket/pg --cluster orders-db',
    );
  }
  return choice;
}

/** Opens the repository; its code (and the AWS SDK for s3://) is loaded only now. */
export async function open(choice: RepositoryChoice): Promise<Repository> {
  const { openRepository } = await import('#domain/repository/open');
  return openRepository(choice.url, choice.cluster);
}
