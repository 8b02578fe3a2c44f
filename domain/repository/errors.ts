/** Errors of the repository. Their names are part of the interface, as for every pgsnap error. */
import { PreconditionError } from '../errors.ts';

/**
 * The repository could not be reached or answered with a server error; trying again may work.
 *
 * What to do: It usually passes: the state machines retry it and PostgreSQL retries `archive_command`. If it
 * lasts, check that the host reaches the repository (S3 endpoint, network, DNS, the URL's `region`); `pgsnap
 * doctor` tries it.
 */
export class RepositoryUnreachableError extends Error {
  override name = 'RepositoryUnreachableError';
}

/**
 * A repository call got no answer within its time limit: the endpoint accepted the connection and went
 * silent, or never accepted it (a blackholed endpoint, a missing VPC endpoint route, a proxy). A kind of
 * unreachable: trying again later may work, and PostgreSQL retries archive_command.
 *
 * What to do: Check the network path to S3 named in the message, or raise PGSNAP_AWS_CONNECT_TIMEOUT and
 * PGSNAP_AWS_REQUEST_TIMEOUT (seconds) for a slow link.
 */
export class RepositoryTimeoutError extends RepositoryUnreachableError {
  override name = 'RepositoryTimeoutError';
}

/**
 * The repository refused the request (credentials, bucket policy, a missing bucket or directory).
 *
 * What to do: Check the instance role's policy (`pgsnap-<environment>-host-<cluster>`), the bucket's name
 * and policy, or the directory's owner and mode; the message names the refused request.
 */
export class RepositoryAccessError extends Error {
  override name = 'RepositoryAccessError';
}

/**
 * An object in the repository is not what was stored: truncated, altered, or not pgsnap's.
 *
 * What to do: The object is not used. Find who wrote it (the bucket's object versions, CloudTrail data
 * events), and restore from a backup whose artifacts and WAL verify (`pgsnap backups show ID --verify`).
 */
export class CorruptObjectError extends Error {
  override name = 'CorruptObjectError';
}

/**
 * A WAL file or artifact is already in the repository with different content; it is never overwritten. The
 * message names both checksums.
 *
 * What to do: Two data directories archive under one cluster name: a host restored or rewound (pg_rewind)
 * onto the same timeline, or a copy started as a new primary. Archive that one under a new `--cluster` name.
 */
export class RepositoryConflictError extends Error {
  override name = 'RepositoryConflictError';
}

/**
 * The repository's cluster.json pins another cluster (system identifier) to this cluster name; nothing was
 * written.
 *
 * What to do: Archive each cluster under a name of its own: change `--cluster` (in archive_command too).
 */
export class ClusterMismatchError extends PreconditionError {
  override name = 'ClusterMismatchError';
}

/**
 * The repository has no cluster of that name (no cluster.json): nothing was ever archived there.
 *
 * What to do: Check `--repo` and `--cluster`, and that archiving works on the source host (`pgsnap doctor`).
 */
export class UnknownClusterError extends PreconditionError {
  override name = 'UnknownClusterError';
}

/**
 * A manifest or cluster.json does not match its schema.
 *
 * What to do: The object was truncated or edited, or written by a newer pgsnap: upgrade the agent, or
 * restore from another backup; the object's versions in the bucket show who changed it.
 */
export class ManifestInvalidError extends Error {
  override name = 'ManifestInvalidError';
}
