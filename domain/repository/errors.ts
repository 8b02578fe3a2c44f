/** Errors of the repository. Their names are part of the interface, as for every pgsnap error. */
import { PreconditionError } from '../errors.ts';

/** The repository could not be reached or answered with a server error; trying again may work. */
export class RepositoryUnreachableError extends Error {
  override name = 'RepositoryUnreachableError';
}

/**
 * A repository call got no answer within its time limit (PGSNAP_AWS_CONNECT_TIMEOUT,
 * PGSNAP_AWS_REQUEST_TIMEOUT): the endpoint accepted the connection and went
 * silent, or never accepted it. Appears when the network path to S3 is broken
 * (a blackholed endpoint, a missing VPC endpoint route, a proxy); check that
 * path, or raise the limits for a slow link. A kind of unreachable: trying
 * again later may work, and archive_command is retried by PostgreSQL.
 */
export class RepositoryTimeoutError extends RepositoryUnreachableError {
  override name = 'RepositoryTimeoutError';
}

/** The repository refused the request (credentials, bucket policy, a missing bucket or directory). */
export class RepositoryAccessError extends Error {
  override name = 'RepositoryAccessError';
}

/** An object in the repository is not what was stored: truncated, altered, or not pgsnap's. */
export class CorruptObjectError extends Error {
  override name = 'CorruptObjectError';
}

/** A WAL file or artifact is already in the repository with different content; it is never overwritten. */
export class RepositoryConflictError extends Error {
  override name = 'RepositoryConflictError';
}

/** The repository's cluster.json pins another cluster (system identifier) to this cluster name. */
export class ClusterMismatchError extends PreconditionError {
  override name = 'ClusterMismatchError';
}

/** The repository has no cluster of that name (no cluster.json): nothing was ever archived there. */
export class UnknownClusterError extends PreconditionError {
  override name = 'UnknownClusterError';
}

/** A manifest or cluster.json does not match its schema. */
export class ManifestInvalidError extends Error {
  override name = 'ManifestInvalidError';
}
