/**
 * What the hostile-host tests share: a real backup of a real cluster in a
 * file:// repository (what a restore target restores), its "volumes" handed
 * to the target through PGSNAP_LOCAL_VOLUMES, and restore records written as
 * the state machine writes them — or as a hostile database host rewrites
 * them, raw, past every schema.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { newRestoreId } from '#domain/ids';
import { type RestoreRecord, recordDigest } from '#domain/repository/restore-record';
import { Cluster, freePort, ownedDir } from '../support/cluster.ts';
import { pgsnap } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';

const run = promisify(execFile);

/** Why the hostile-host suite cannot run here, or undefined. CI runs it as root with loop devices. */
export function cannotRun(needs: { loopDevices?: boolean } = {}): string | undefined {
  if (process.getuid?.() !== 0)
    return 'the restore target runs as root (mounts, runuser): run the suite as root';
  if (needs.loopDevices) {
    for (const tool of ['losetup', 'mkfs.ext4', 'blkid']) {
      if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing`;
    }
    if (spawnSync('losetup', ['-f']).status !== 0) return 'no free loop device';
  }
  return undefined;
}

/** Skips LOUDLY on a developer machine that cannot run it; CI must. */
export function skipReason(suite: string, needs: { loopDevices?: boolean } = {}): string | undefined {
  const reason = cannotRun(needs);
  if (reason && process.env.CI) throw new Error(`CI must run ${suite}, but ${reason}`);
  if (reason) console.warn(`\n*** SKIPPING ${suite}: ${reason} ***\n`);
  return reason;
}

export interface Backup {
  source: Cluster;
  repo: TestRepository;
  backupId: string;
  /** A copy of PGDATA taken inside the backup: what an EBS snapshot of its volume holds. */
  snapshot: string;
  work: string;
}

/** A cluster with 100 rows, backed up with pgsnap begin/end into a file:// repository. */
export async function takeBackup(): Promise<Backup> {
  const work = mkdtempSync(join(tmpdir(), 'pgsnap-hostile-'));
  chmodSync(work, 0o711);
  const repo = testRepository('file');
  const source = await Cluster.create({ settings: { archive_command: repo.archiveCommand() } });
  await source.query('CREATE TABLE t (id bigint PRIMARY KEY)');
  await source.query('INSERT INTO t SELECT g FROM generate_series(1, 100) g');
  const env = { ...source.env, PGSNAP_STATE_DIR: join(source.root, 'state') };
  const begun = await pgsnap(['begin', '--label', 'hostile', '--fast', '--json', ...repo.flags], env);
  expect(begun.code, begun.stderr).toBe(0);
  const snapshot = join(work, 'snap-data');
  await run('cp', ['-a', source.dataDir, snapshot]);
  const ended = await pgsnap(['end', '--snapshot', snapshot, '--json', ...repo.flags], env);
  expect(ended.code, ended.stderr).toBe(0);
  await source.query('SELECT pg_switch_wal()');
  for (let i = 0; i < 200; i++) {
    const [row] = await source.query<{ n: string }>(
      "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    );
    if (Number(row!.n) === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { source, repo, backupId: begun.json!.backupId as string, snapshot, work };
}

export const dataVolumeId = 'vol-0000000000000f001';
export const walVolumeId = 'vol-0000000000000f002';

/** A volume record as the manifest has it: what it holds, where it was mounted on the source. */
export function volumeRecord(role: 'data' | 'wal', path: string, mountPoint = path) {
  return {
    holds: [{ role, path }],
    mountPoint,
    fstype: 'ext4',
    sizeGiB: 1,
    volumeType: 'gp3',
    encrypted: false,
    availabilityZone: 'local-1a',
  };
}

export interface Target {
  restoreId: string;
  /** A directory of root's, below which the restore mounts. */
  mountRoot: string;
  dir: string;
  /** The agent's environment on the target (as pgsnap.env gives it). */
  env: NodeJS.ProcessEnv;
  flags: string[];
  record: RestoreRecord;
  digest: string;
}

/**
 * A restore target: a directory of root's for the restore, local volumes (a
 * fresh copy of the backup's PGDATA, and any others `volumes` makes), and a
 * restore record written through the schema, as the state machine writes it.
 */
export async function target(
  backup: Backup,
  name: string,
  options: {
    record?: (mountRoot: string) => Partial<RestoreRecord>;
    /** More local volumes: volume id to a directory or a block device. */
    volumes?: Record<string, { path: string; device?: string }>;
  } = {},
): Promise<Target> {
  const dir = join(backup.work, name);
  mkdirSync(dir, { mode: 0o711 });
  const data = join(dir, 'vol-data');
  await run('cp', ['-a', backup.snapshot, data]);
  const localVolumes = join(dir, 'local-volumes.json');
  writeFileSync(
    localVolumes,
    JSON.stringify({
      volumes: [
        { volumeId: dataVolumeId, path: data },
        ...Object.entries(options.volumes ?? {}).map(([volumeId, v]) => ({ volumeId, ...v })),
      ],
    }),
  );
  const restoreId = newRestoreId();
  const mountRoot = join(dir, 'mnt');
  const now = new Date().toISOString();
  const record: RestoreRecord = {
    schemaVersion: 1,
    restoreId,
    cluster: backup.repo.cluster,
    backupId: backup.backupId,
    mode: 'drill',
    state: 'attached',
    checks: { amcheck: 'none' },
    mountRoot,
    // The source still runs on this machine: the restored server listens elsewhere.
    port: await freePort(),
    repository: backup.repo.url,
    volumes: [
      {
        snapshotId: 'snap-0000000000000f001',
        volumeId: dataVolumeId,
        source: volumeRecord('data', '/srv/pg/data'),
      },
    ],
    timings: { requestedAt: now },
    updatedAt: now,
    ...options.record?.(mountRoot),
  };
  const repository = await backup.repo.open();
  try {
    await repository.writeRestoreRecord(record);
  } finally {
    repository.close();
  }
  return {
    restoreId,
    mountRoot,
    dir,
    env: {
      PGHOST: '127.0.0.1',
      PGUSER: 'postgres',
      PGDATABASE: 'postgres',
      PGSNAP_LOCAL_VOLUMES: localVolumes,
      PGSNAP_STATE_DIR: ownedStateDir(dir),
    },
    flags: ['--restore-id', restoreId, ...backup.repo.flags, '--json'],
    record,
    digest: recordDigest(record),
  };
}

function ownedStateDir(dir: string): string {
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  return state;
}

/** Writes the record as a hostile host would: raw JSON at its key, past every schema. */
export function rewriteRecordRaw(backup: Backup, restoreId: string, record: unknown): void {
  const root = backup.repo.url.slice('file://'.length);
  const path = join(root, backup.repo.cluster, 'restores', `${restoreId}.json`);
  writeFileSync(path, JSON.stringify(record));
}

/** The mounts below `dir`, from the kernel's own table. */
export function mountsBelow(dir: string): Array<{ target: string; options: string[] }> {
  return execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      // mountinfo(5): 5th field the mount point (octal escapes), 6th the per-mount options.
      const target = fields[4]!.replace(/\\(\d{3})/g, (_, o: string) =>
        String.fromCharCode(Number.parseInt(o, 8)),
      );
      return { target, options: fields[5]!.split(',') };
    })
    .filter((m) => m.target === dir || m.target.startsWith(`${dir}/`));
}

/** Takes away whatever a test left mounted below `dir`, innermost first. */
export function unmountBelow(dir: string): void {
  for (const m of mountsBelow(dir).reverse()) spawnSync('umount', ['-l', m.target]);
}

export { ownedDir };
