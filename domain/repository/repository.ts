/**
 * One cluster's part of a repository, laid out as in DESIGN.md:
 *
 *   <cluster>/cluster.json
 *   <cluster>/wal/<file>.zst
 *   <cluster>/backups/<backupId>/{manifest.json, backup_label, tablespace_map, <…>.backup}
 *
 * The same keys in a bucket and in a directory.
 */
import { backupIdPattern, restoreIdPattern, validateBackupId } from '../ids.ts';
import {
  type ClusterIdentity,
  type ClusterPin,
  checkClusterPin,
  newClusterPin,
  newPinCodec,
  parseClusterPin,
} from './cluster-pin.ts';
import { CorruptObjectError, RepositoryConflictError, UnknownClusterError } from './errors.ts';
import { InOrder } from './in-order.ts';
import { type ArtifactRecord, type Manifest, parseManifest, validateManifest } from './manifest.ts';
import { parseRestoreRecord, type RestoreRecord, validateRestoreRecord } from './restore-record.ts';
import type { ObjectStore } from './store.ts';
import { decodeWalObject, encodeWalObject, readWalObjectHeader, sha256, walExtension } from './wal-object.ts';

const compressionSuffix = new RegExp(`\\.(${Object.values(walExtension).join('|')})$`);

export interface PushResult {
  status: 'stored' | 'already-present';
  sha256: string;
  bytes: number;
  storedBytes: number;
  key: string;
}

export class Repository {
  /** WAL objects fetched at once are decoded one at a time, the earliest file first (see InOrder). */
  readonly #decoding = new InOrder();

  constructor(
    readonly store: ObjectStore,
    readonly cluster: string,
  ) {}

  /** `s3://bucket/prefix/orders-db`: where this cluster's part of the repository is. */
  get url(): string {
    return `${this.store.url}/${this.cluster}`;
  }

  where(key: string): string {
    return `${this.store.url}/${key}`;
  }

  private get pinKey(): string {
    return `${this.cluster}/cluster.json`;
  }

  walKey(pin: Pick<ClusterPin, 'walCompression'>, name: string): string {
    return `${this.cluster}/wal/${name}.${walExtension[pin.walCompression]}`;
  }

  backupKey(backupId: string, name: string): string {
    return `${this.cluster}/backups/${validateBackupId(backupId)}/${name}`;
  }

  async readPin(): Promise<ClusterPin | undefined> {
    const bytes = await this.store.get(this.pinKey);
    return bytes && parseClusterPin(bytes, this.where(this.pinKey));
  }

  /** The pin, or UnknownClusterError: for readers, which must not create a cluster. */
  async requirePin(): Promise<ClusterPin> {
    const pin = await this.readPin();
    if (!pin) {
      throw new UnknownClusterError(
        `there is no cluster ${JSON.stringify(this.cluster)} in repository ${this.store.url} ` +
          `(no ${this.pinKey}); check --repo and --cluster (PGSNAP_REPO, PGSNAP_CLUSTER)`,
      );
    }
    return pin;
  }

  /**
   * Pins the cluster name to `identity` on first use, and checks the pin on
   * every later one. Two first writers race safely: one creates, the other
   * reads what was created and checks it.
   */
  async pin(identity: ClusterIdentity, createdBy: string): Promise<ClusterPin> {
    let pin = await this.readPin();
    if (!pin) {
      const created = newClusterPin(this.cluster, identity, createdBy);
      const result = await this.store.putIfAbsent(
        this.pinKey,
        Buffer.from(`${JSON.stringify(created, null, 2)}\n`),
      );
      pin = result === 'created' ? created : await this.requirePin();
    }
    checkClusterPin(pin, identity, this.url);
    return pin;
  }

  /**
   * Archives one WAL file. A file already there with the same content is
   * success (the archiver retries after a crash between our write and its own
   * bookkeeping); with other content it is an error, and nothing is overwritten.
   */
  async pushWal(pin: ClusterPin, name: string, content: Buffer): Promise<PushResult> {
    const key = this.walKey(pin, name);
    // Whether the object is there already is asked while the file is being compressed: on S3 a round trip
    // that would otherwise come after the encoding, before the PUT.
    const [present, object] = await Promise.all([this.store.exists(key), encodeWalObject(name, content)]);
    const header = readWalObjectHeader(object, key);
    const result = present
      ? 'exists'
      : await this.store.putIfAbsent(key, object, { bulk: true, checked: true });
    if (result === 'created') {
      return {
        status: 'stored',
        sha256: header.sha256,
        bytes: content.length,
        storedBytes: object.length,
        key,
      };
    }
    const existing = await this.store.get(key);
    let stored: string;
    try {
      stored = existing
        ? (await decodeWalObject(name, existing, this.where(key))).header.sha256
        : '(vanished)';
    } catch (error) {
      if (!(error instanceof CorruptObjectError)) throw error;
      throw new RepositoryConflictError(
        `${name} is already in the repository but that object is damaged (${error.message}); ` +
          `this file has sha256 ${header.sha256}. Nothing was overwritten: inspect ${this.where(key)}, ` +
          'move it aside, and the archiver will push this file again.',
        { cause: error },
      );
    }
    if (stored !== header.sha256) {
      throw new RepositoryConflictError(
        `${name} is already in the repository with different content: stored sha256 ${stored}, ` +
          `this file sha256 ${header.sha256}. Nothing was overwritten. Two servers may be archiving as ` +
          `cluster ${this.cluster}, or a restored copy kept the production archive_command.`,
      );
    }
    return {
      status: 'already-present',
      sha256: header.sha256,
      bytes: content.length,
      storedBytes: existing?.length ?? 0,
      key,
    };
  }

  /** The verified content of an archived file, or undefined when it is not in the repository. */
  async fetchWal(pin: ClusterPin, name: string): Promise<Buffer | undefined> {
    const key = this.walKey(pin, name);
    // Asked at the same time as the object: a restore_command waits for one round trip, not two.
    const [object] = await Promise.all([this.store.get(key), this.#requireOneVersion(name, key)]);
    if (!object) return undefined;
    return this.#decode(name, object, key, pin.walSegmentSize);
  }

  /**
   * The sha256 in a WAL object's header is written by whoever writes the
   * object, so it proves the bytes were not damaged, not that they were
   * archived by this cluster's server. What a writer cannot forge is the
   * bucket's history: the repository bucket is versioned and keeps every
   * version past an overwrite or a delete (infra/guards/repository-bucket.ts), and
   * its policy refuses any WAL write that could replace an object. A WAL key
   * was written exactly once by the archiver, so a key with a second version
   * (or a delete marker) was replaced or deleted and written again since:
   * a restore refuses it rather than replay WAL someone else put there.
   * Where the store keeps no versions (a directory, a bucket without
   * versioning) there is nothing to check.
   */
  async #requireOneVersion(name: string, key: string): Promise<void> {
    const versions = await this.store.versionCount?.(key);
    if (versions === undefined || versions <= 1) return;
    throw new CorruptObjectError(
      `${this.where(key)} has ${versions} versions: ${name} was overwritten, or deleted and written again, ` +
        'after it was archived, so its content cannot be trusted and the restore stops here. List the versions ' +
        '(aws s3api list-object-versions), find out who wrote them (CloudTrail data events, the access logs), and ' +
        'restore the first version only once you know it is the archived one.',
    );
  }

  /**
   * fetchWal for a caller still reading the pin (the first call of a
   * restore_command): the object is asked for meanwhile, one round trip where
   * there would be two, under the key of the codec new pins name; should the
   * pin name another, it is fetched again under that codec's key.
   */
  async fetchWalWhilePinning(pinning: Promise<ClusterPin>, name: string): Promise<Buffer | undefined> {
    const guess = this.walKey({ walCompression: newPinCodec }, name);
    const [pin, object] = await Promise.all([
      pinning,
      this.store.get(guess),
      this.#requireOneVersion(name, guess),
    ]);
    if (this.walKey(pin, name) !== guess) return this.fetchWal(pin, name);
    return object && this.#decode(name, object, guess, pin.walSegmentSize);
  }

  async #decode(name: string, object: Buffer, key: string, segmentSize: number): Promise<Buffer> {
    const decoding = () => decodeWalObject(name, object, this.where(key), segmentSize);
    return (await this.#decoding.run(name, decoding)).content;
  }

  async hasWal(pin: ClusterPin, name: string): Promise<boolean> {
    return this.store.exists(this.walKey(pin, name));
  }

  /**
   * Stores one artifact of a backup byte for byte. Artifacts never change once
   * written: storing the same bytes again (a retried `end`) is success.
   */
  async putArtifact(backupId: string, name: string, content: Buffer): Promise<ArtifactRecord> {
    const key = this.backupKey(backupId, name);
    const record = { name, sha256: sha256(content), bytes: content.length };
    if ((await this.store.putIfAbsent(key, content, { bulk: true })) === 'exists') {
      const existing = await this.store.get(key);
      const stored = existing ? sha256(existing) : '(vanished)';
      if (stored !== record.sha256) {
        throw new RepositoryConflictError(
          `${this.where(key)} already exists with sha256 ${stored}, not ${record.sha256}; nothing was overwritten`,
        );
      }
    }
    return record;
  }

  /** Reads an artifact and checks it against the manifest's record of it. */
  async readArtifact(backupId: string, record: ArtifactRecord): Promise<Buffer> {
    const key = this.backupKey(backupId, record.name);
    const content = await this.store.get(key);
    if (!content)
      throw new CorruptObjectError(`${this.where(key)} is missing; the backup cannot be restored`);
    const actual = sha256(content);
    if (actual !== record.sha256 || content.length !== record.bytes) {
      throw new CorruptObjectError(
        `${this.where(key)} is corrupt: sha256 ${actual} (${content.length} bytes), the manifest says ` +
          `${record.sha256} (${record.bytes} bytes)`,
      );
    }
    return content;
  }

  async writeManifest(manifest: Manifest): Promise<void> {
    const key = this.backupKey(manifest.backupId, 'manifest.json');
    const valid = validateManifest(manifest, this.where(key));
    await this.store.put(key, Buffer.from(`${JSON.stringify(valid, null, 2)}\n`));
  }

  async readManifest(backupId: string): Promise<Manifest | undefined> {
    const key = this.backupKey(backupId, 'manifest.json');
    const bytes = await this.store.get(key);
    return bytes && parseManifest(bytes, this.where(key));
  }

  /** backupIds in the catalog, oldest first (a backupId sorts by its start time). */
  async listBackupIds(): Promise<string[]> {
    const names = await this.store.list(`${this.cluster}/backups/`);
    return names.filter((name) => backupIdPattern.test(name));
  }

  /** The archived WAL files, by name (without the compression extension) and key. */
  async listWal(): Promise<Array<{ name: string; key: string }>> {
    const files = await this.store.list(`${this.cluster}/wal/`);
    return files.map((file) => ({
      name: file.replace(compressionSuffix, ''),
      key: `${this.cluster}/wal/${file}`,
    }));
  }

  /**
   * The archived WAL files whose names sort after `startAfter`, in name
   * order, without listing or holding the earlier ones where the store can
   * start a listing at a key (S3's StartAfter).
   */
  async *scanWal(startAfter?: string): AsyncIterable<string> {
    const prefix = `${this.cluster}/wal/`;
    if (this.store.scan) {
      for await (const file of this.store.scan(prefix, startAfter)) yield file.replace(compressionSuffix, '');
      return;
    }
    for (const file of await this.store.list(prefix)) {
      const name = file.replace(compressionSuffix, '');
      if (startAfter === undefined || name > startAfter) yield name;
    }
  }

  async deleteWal(key: string): Promise<void> {
    if (!key.startsWith(`${this.cluster}/wal/`)) throw new Error(`not a WAL key of ${this.cluster}: ${key}`);
    await this.store.delete(key);
  }

  /**
   * Everything under the backup's prefix, the manifest last: a manifest never
   * points at an artifact already gone, and nothing beside it (a DR proposal,
   * `source-manifest.json`) outlives it.
   */
  async deleteBackup(manifest: Manifest): Promise<void> {
    const names = new Set(manifest.artifacts.map((artifact) => artifact.name));
    for (const name of await this.store.list(
      `${this.cluster}/backups/${validateBackupId(manifest.backupId)}/`,
    ))
      if (name !== 'manifest.json') names.add(name);
    for (const name of names) await this.store.delete(this.backupKey(manifest.backupId, name));
    await this.store.delete(this.backupKey(manifest.backupId, 'manifest.json'));
  }

  restoreKey(restoreId: string): string {
    if (!restoreIdPattern.test(restoreId)) throw new Error(`not a restoreId: ${restoreId}`);
    return `${this.cluster}/restores/${restoreId}.json`;
  }

  async writeRestoreRecord(record: RestoreRecord): Promise<void> {
    const key = this.restoreKey(record.restoreId);
    const valid = validateRestoreRecord(record, this.where(key));
    await this.store.put(key, Buffer.from(`${JSON.stringify(valid, null, 2)}\n`));
  }

  async readRestoreRecord(restoreId: string): Promise<RestoreRecord | undefined> {
    const key = this.restoreKey(restoreId);
    const bytes = await this.store.get(key);
    return bytes && parseRestoreRecord(bytes, this.where(key));
  }

  /** restoreIds in the repository, oldest first (a restoreId sorts by when it was asked for). */
  async listRestoreIds(): Promise<string[]> {
    const names = await this.store.list(`${this.cluster}/restores/`);
    return names
      .filter((name) => name.endsWith('.json'))
      .map((name) => name.slice(0, -'.json'.length))
      .filter((id) => restoreIdPattern.test(id));
  }

  close(): void {
    this.store.close();
  }
}
