/** Errors of the repository. Their names are part of the interface, as for every pgsnap error. */
import { PreconditionError } from '../errors.ts';

/** The repository could not be reached or answered with a server error; trying again may work. */
export class RepositoryUnreachableError extends Error {
  override name = 'RepositoryUnreachableError';
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
