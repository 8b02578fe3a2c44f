/** Which repository a command uses: --repo / PGSNAP_REPO and --cluster / PGSNAP_CLUSTER, validated once here. */

import { UsageError } from '#domain/errors';
import type { Repository } from '#domain/repository/repository';
import type { ObjectStore } from '#domain/repository/store';
import { settingsFrom } from './settings.ts';

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
  const { repo: url, cluster } = settingsOf(values, env);
  if (url === undefined || url === '') return undefined;
  if (!cluster) {
    throw new UsageError(
      `a repository needs a cluster name: give --cluster NAME (or PGSNAP_CLUSTER), ` +
        'the name this cluster has in the repository, e.g. --cluster orders-db',
    );
  }
  return { url, cluster };
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

/** Only the two flags a repository takes, so that a command's other flags are read where it reads them. */
function settingsOf(values: RepositoryValues, env: NodeJS.ProcessEnv) {
  return settingsFrom(
    {
      ...(values.repo !== undefined ? { repo: values.repo } : {}),
      ...(values.cluster !== undefined ? { cluster: values.cluster } : {}),
    },
    env,
  );
}

/** Opens the repository; its code (and the AWS SDK for s3://) is loaded only now. */
export async function open(choice: RepositoryChoice): Promise<Repository> {
  const { openRepository } = await import('#domain/repository/open');
  const { awsTimeouts } = await import('./aws-timeouts.ts');
  const credentials = await repositoryCredentials(choice.url);
  return openRepository(choice.url, choice.cluster, {
    timeouts: awsTimeouts(),
    ...(credentials ? { credentials } : {}),
  });
}

/**
 * The whole repository, for the commands that read every cluster of it (`backups list --all`): the
 * repository's URL from --repo / PGSNAP_REPO, no cluster needed.
 */
export async function openWhole(command: string, values: RepositoryValues): Promise<ObjectStore> {
  const url = settingsFrom(values.repo !== undefined ? { repo: values.repo } : {}).repo;
  if (url === undefined || url === '') {
    throw new UsageError(
      `pgsnap ${command}: no repository: give --repo s3://bucket/prefix or --repo file:///dir (or set PGSNAP_REPO)`,
    );
  }
  const { openStore } = await import('#domain/repository/open');
  const { parseRepositoryUrl } = await import('#domain/repository/location');
  const { awsTimeouts } = await import('./aws-timeouts.ts');
  const credentials = await repositoryCredentials(url);
  return openStore(parseRepositoryUrl(url), {
    timeouts: awsTimeouts(),
    ...(credentials ? { credentials } : {}),
  });
}

/** For an s3:// repository on a host found by tags (PGSNAP_CREDENTIALS_URL), the vended credentials. */
async function repositoryCredentials(url: string) {
  if (!url.startsWith('s3://')) return undefined;
  const { credentialsFromSettings } = await import('./vended-credentials.ts');
  return credentialsFromSettings();
}
