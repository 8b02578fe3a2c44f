/**
 * The one interface both backends implement. Keys are relative to the
 * repository root and use `/`; both backends lay them out the same way, so a
 * repository can be copied between a directory and a bucket byte for byte.
 */

export interface PutOptions {
  /** WAL and artifacts: the bulk of the repository, stored with the configured storage class. */
  bulk?: boolean;
  /**
   * putIfAbsent only: the caller has just seen the key absent, so the store
   * need not look again before writing (S3: no HEAD before the conditional PUT).
   */
  checked?: boolean;
}

export interface ObjectStore {
  /** The repository URL (no query), for messages. */
  readonly url: string;
  /** The object's bytes, or undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  exists(key: string): Promise<boolean>;
  /**
   * Stores the object unless the key exists; an existing object is left as it
   * is. Readers never see a partly written object.
   */
  putIfAbsent(key: string, body: Buffer, options?: PutOptions): Promise<'created' | 'exists'>;
  /** Stores the object, replacing any previous one atomically (for documents that change: manifests). */
  put(key: string, body: Buffer, options?: PutOptions): Promise<void>;
  /** Removes the object; removing one that is not there is not an error (retention may run twice). */
  delete(key: string): Promise<void>;
  /**
   * How many versions (delete markers included) the store keeps of `key`, or
   * undefined where it keeps none (a directory, an S3-compatible server
   * without versioning).
   */
  versionCount?(key: string): Promise<number | undefined>;
  /** When the object was last written, or undefined when there is none (`backups list`: the newest WAL's time). */
  modifiedAt?(key: string): Promise<Date | undefined>;
  /** Names one level below `prefix` (which ends in `/`): objects and "directories" alike, sorted. */
  list(prefix: string): Promise<string[]>;
  /**
   * Names one level below `prefix` that sort after `startAfter`, in order, a
   * page at a time: a reader that needs only the tail of a long listing (the
   * WAL from a backup's first segment on) neither lists nor holds the rest.
   */
  scan?(prefix: string, startAfter?: string): AsyncIterable<string>;
  /** Releases connections, so a short-lived process can exit at once. */
  close(): void;
}

/** Refuses keys that could leave the repository root. */
export function checkKey(key: string): string {
  if (key.startsWith('/') || key.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`invalid repository key ${JSON.stringify(key)}`);
  }
  return key;
}
