/**
 * The repository on every backend, the same tests for each: a directory, the
 * local S3 server (s3rver) and moto_server's S3 (the AWS emulator, which
 * also honours conditional writes, IfNoneMatch, as S3 does; s3rver ignores
 * them). What is stored is read back byte for byte; what is damaged is
 * detected; what is already there is never overwritten; a cluster name stays
 * pinned to one cluster.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { Moto, skipWithoutMoto } from '../support/moto.ts';
import { LocalS3 } from '../support/s3.ts';

const mb16 = 16 * 1024 * 1024;
const identity = { systemIdentifier: '7710631090410220509', walSegmentSize: mb16, pgVersion: '15' };

/** A segment-like file: varied, compressible content, different for every seed. */
function content(seed: number, size = mb16): Buffer {
  const buffer = Buffer.alloc(size);
  for (let i = 0; i < size; i += 64) buffer.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
  return buffer;
}

interface Backend {
  name: string;
  url: () => string;
  /** Reads and replaces a raw object, as damage or a careless hand would. */
  raw: {
    read(key: string): Promise<Buffer>;
    write(key: string, body: Buffer): Promise<void>;
  };
  env?: () => Record<string, string>;
  /** Whether PutObject honours IfNoneMatch (S3 and moto do; s3rver ignores it). */
  conditionalWrites: boolean;
  skip?: boolean;
}

let s3: LocalS3;
let moto: Moto | undefined;
const fileRoot = mkdtempSync(join(tmpdir(), 'pgsnap-repo-'));

beforeAll(async () => {
  s3 = await LocalS3.start();
  Object.assign(process.env, s3.env);
  if (!skipWithoutMoto) {
    moto = await Moto.start();
    const client = motoClient();
    await client.send(new CreateBucketCommand({ Bucket: 'pgsnap-moto' }));
    client.destroy();
  }
});
afterAll(async () => {
  await moto?.stop();
  await s3?.destroy();
  rmSync(fileRoot, { recursive: true, force: true });
});

const backends: Backend[] = [
  {
    name: 'file://',
    url: () => `file://${fileRoot}`,
    raw: {
      read: async (key) => readFileSync(join(fileRoot, key)),
      write: async (key, body) => writeFileSync(join(fileRoot, key), body),
    },
    conditionalWrites: true,
  },
  {
    name: 's3://',
    url: () => s3.url('repo'),
    raw: {
      read: async (key) => {
        const client = s3.client();
        const answer = await client.send(new GetObjectCommand({ Bucket: 'pgsnap-test', Key: `repo/${key}` }));
        const body = Buffer.from(await answer.Body!.transformToByteArray());
        client.destroy();
        return body;
      },
      write: async (key, body) => {
        const client = s3.client();
        await client.send(new PutObjectCommand({ Bucket: 'pgsnap-test', Key: `repo/${key}`, Body: body }));
        client.destroy();
      },
    },
    conditionalWrites: false,
  },
  {
    name: 's3:// on moto',
    url: () =>
      `s3://pgsnap-moto/repo?endpoint=${encodeURIComponent(moto!.endpoint)}&path-style=true&region=us-east-1`,
    raw: {
      read: async (key) => {
        const client = motoClient();
        const answer = await client.send(new GetObjectCommand({ Bucket: 'pgsnap-moto', Key: `repo/${key}` }));
        const body = Buffer.from(await answer.Body!.transformToByteArray());
        client.destroy();
        return body;
      },
      write: async (key, body) => {
        const client = motoClient();
        await client.send(new PutObjectCommand({ Bucket: 'pgsnap-moto', Key: `repo/${key}`, Body: body }));
        client.destroy();
      },
    },
    conditionalWrites: true,
    skip: skipWithoutMoto,
  },
];

function motoClient(): S3Client {
  return new S3Client({
    ...moto!.client(),
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

describe.each(backends)('repository on $name', (backend) => {
  let cluster = 0;
  async function fresh(): Promise<Repository> {
    cluster += 1;
    return openRepository(backend.url(), `db-${cluster}`);
  }
  if (backend.skip) return;

  it('does every store operation: put, get, exists, putIfAbsent, list, delete', async () => {
    const { store, cluster } = await fresh();
    const key = (name: string) => `${cluster}/store/${name}`;
    expect(await store.get(key('a'))).toBeUndefined();
    expect(await store.exists(key('a'))).toBe(false);
    expect(await store.putIfAbsent(key('a'), Buffer.from('first'))).toBe('created');
    expect(await store.putIfAbsent(key('a'), Buffer.from('second'))).toBe('exists');
    expect((await store.get(key('a')))?.toString()).toBe('first');
    await store.put(key('b'), Buffer.from('one'));
    await store.put(key('b'), Buffer.from('two'));
    expect((await store.get(key('b')))?.toString()).toBe('two');
    await store.put(key('dir/c'), Buffer.from('deeper'));
    expect(await store.list(`${cluster}/store/`)).toEqual(['a', 'b', 'dir']);
    await store.delete(key('a'));
    await store.delete(key('a'));
    expect(await store.exists(key('a'))).toBe(false);
    expect(await store.list(`${cluster}/store/`)).toEqual(['b', 'dir']);
    store.close();
  });

  // Defined only where the server has conditional writes (file:// and moto's S3; the local S3 server has
  // none): not a skip, the property does not exist there.
  (backend.conditionalWrites ? it : () => undefined)(
    'a conditional write (IfNoneMatch) never replaces an object, even without the existence check first',
    async () => {
      const { store, cluster } = await fresh();
      const key = `${cluster}/wal/000000010000000000000001.zst`;
      expect(await store.putIfAbsent(key, Buffer.from('first'), { checked: true })).toBe('created');
      // `checked`: the caller has just seen the key absent, so only the condition on the PUT stops it.
      expect(await store.putIfAbsent(key, Buffer.from('second'), { checked: true })).toBe('exists');
      expect((await store.get(key))?.toString()).toBe('first');
      store.close();
    },
  );

  it('stores a WAL segment compressed and gives back the same bytes', async () => {
    const repo = await fresh();
    const pin = await repo.pin(identity, 'test');
    const segment = content(1);
    const pushed = await repo.pushWal(pin, '000000010000000000000001', segment);
    expect(pushed.status).toBe('stored');
    expect(pushed.storedBytes).toBeLessThan(segment.length / 4);
    expect(pushed.key).toBe(`${repo.cluster}/wal/000000010000000000000001.zst`);
    expect((await repo.fetchWal(pin, '000000010000000000000001'))?.equals(segment)).toBe(true);
    expect(await repo.fetchWal(pin, '000000010000000000000002')).toBeUndefined();
    repo.close();
  });

  it('fetches a segment while reading the pin, and names a missing cluster rather than a missing file', async () => {
    const repo = await fresh();
    const pin = await repo.pin(identity, 'test');
    await repo.pushWal(pin, '000000010000000000000001', content(1));
    const fetched = await repo.fetchWalWhilePinning(repo.requirePin(), '000000010000000000000001');
    expect(fetched?.equals(content(1))).toBe(true);
    expect(await repo.fetchWalWhilePinning(repo.requirePin(), '000000010000000000000002')).toBeUndefined();

    const unknown = await fresh();
    await expect(
      unknown.fetchWalWhilePinning(unknown.requirePin(), '000000010000000000000001'),
    ).rejects.toMatchObject({
      name: 'UnknownClusterError',
      message: expect.stringContaining(unknown.cluster),
    });
    repo.close();
    unknown.close();
  });

  it('takes the same segment twice as success and refuses different content naming both checksums', async () => {
    const repo = await fresh();
    const pin = await repo.pin(identity, 'test');
    const first = await repo.pushWal(pin, '000000010000000000000003', content(3));
    const again = await repo.pushWal(pin, '000000010000000000000003', content(3));
    expect(again).toMatchObject({ status: 'already-present', sha256: first.sha256 });
    const other = await repo.pushWal(pin, '000000010000000000000004', content(4));
    const error = await repo.pushWal(pin, '000000010000000000000003', content(4)).catch((e: Error) => e);
    expect(error).toMatchObject({ name: 'RepositoryConflictError' });
    expect((error as Error).message).toContain(first.sha256);
    expect((error as Error).message).toContain(other.sha256);
    expect((await repo.fetchWal(pin, '000000010000000000000003'))?.equals(content(3))).toBe(true);
    repo.close();
  });

  it('detects a truncated or altered object when it is read', async () => {
    const repo = await fresh();
    const pin = await repo.pin(identity, 'test');
    const pushed = await repo.pushWal(pin, '000000010000000000000005', content(5));
    const stored = await backend.raw.read(pushed.key);

    await backend.raw.write(pushed.key, stored.subarray(0, stored.length - 100));
    await expect(repo.fetchWal(pin, '000000010000000000000005')).rejects.toMatchObject({
      name: 'CorruptObjectError',
      message: expect.stringMatching(/truncated/),
    });

    const altered = Buffer.from(stored);
    altered[altered.length - 10]! ^= 0xff;
    await backend.raw.write(pushed.key, altered);
    await expect(repo.fetchWal(pin, '000000010000000000000005')).rejects.toMatchObject({
      name: 'CorruptObjectError',
    });
    repo.close();
  });

  it('pins the cluster name to one system identifier', async () => {
    const repo = await fresh();
    const pin = await repo.pin(identity, 'test');
    expect(pin).toMatchObject({ systemIdentifier: identity.systemIdentifier, walCompression: 'zstd' });
    expect(await repo.pin(identity, 'again')).toEqual(pin);
    await expect(repo.pin({ ...identity, systemIdentifier: '1234' }, 'other')).rejects.toMatchObject({
      name: 'ClusterMismatchError',
      message: expect.stringMatching(
        /system identifier 7710631090410220509.*this cluster's system identifier is 1234/s,
      ),
    });
    repo.close();
  });

  it('keeps artifacts byte for byte and lists the catalog', async () => {
    const repo = await fresh();
    await repo.pin(identity, 'test');
    const label = Buffer.from('START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n');
    const record = await repo.putArtifact('20261121T143000Z-a1b2c3', 'backup_label', label);
    expect(await repo.putArtifact('20261121T143000Z-a1b2c3', 'backup_label', label)).toEqual(record);
    await expect(
      repo.putArtifact('20261121T143000Z-a1b2c3', 'backup_label', Buffer.from('other')),
    ).rejects.toMatchObject({ name: 'RepositoryConflictError' });
    expect((await repo.readArtifact('20261121T143000Z-a1b2c3', record)).equals(label)).toBe(true);
    await backend.raw.write(`${repo.cluster}/backups/20261121T143000Z-a1b2c3/backup_label`, Buffer.from('x'));
    await expect(repo.readArtifact('20261121T143000Z-a1b2c3', record)).rejects.toMatchObject({
      name: 'CorruptObjectError',
    });
    repo.close();
  });
});

it('lays out a file repository exactly as the S3 one', async () => {
  const [file, bucket] = await Promise.all([
    openRepository(`file://${fileRoot}`, 'same'),
    openRepository(s3.url('repo'), 'same'),
  ]);
  for (const repo of [file, bucket]) {
    const pin = await repo.pin(identity, 'test');
    await repo.pushWal(pin, '000000010000000000000001', content(9));
    await repo.putArtifact('20261121T143000Z-a1b2c3', 'backup_label', Buffer.from('label\n'));
  }
  // (s3rver leaves out common prefixes more than one level deep, so the cluster root is compared on disk.)
  expect(await file.store.list('same/')).toEqual(['backups', 'cluster.json', 'wal']);
  expect(await bucket.store.list('same/backups/')).toEqual(['20261121T143000Z-a1b2c3']);
  expect(await bucket.store.list('same/backups/20261121T143000Z-a1b2c3/')).toEqual(['backup_label']);
  expect(readdirSync(join(fileRoot, 'same', 'wal'))).toEqual(await bucket.store.list('same/wal/'));
  const fileObject = readFileSync(join(fileRoot, 'same/wal/000000010000000000000001.zst'));
  expect(fileObject.equals(await backends[1]!.raw.read('same/wal/000000010000000000000001.zst'))).toBe(true);
  file.close();
  bucket.close();
});
