/**
 * What the EBS snapshot set of one backup is (the tags on it, the schema the
 * state machine carries it in, the request that makes it) and how it is found
 * again: by its backupId's tag or by its ids. The set is made in
 * create-snapshot-set.ts, followed in check-snapshot-set.ts and deleted in
 * delete-snapshots.ts.
 */
import {
  DescribeSnapshotsCommand,
  type EC2Client,
  paginateDescribeSnapshots,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import type { Repository } from '../repository/repository.ts';
import * as z from '../zod.ts';

/** Tags on every snapshot pgsnap takes; cleanup and IAM conditions rely on them. */
export const snapshotTags = { cluster: 'pgsnap:cluster', backupId: 'pgsnap:backup-id' } as const;

/**
 * One snapshot of the set as the state machine carries it between steps; every handler that takes
 * the set parses it with this schema. A set is never empty: no backup has zero volumes.
 */
export const snapshotOfSetSchema = z.object({
  snapshotId: z.string(),
  volumeId: z.string(),
  state: z.string(),
});
export const snapshotListSchema = z.array(snapshotOfSetSchema).check(z.minLength(1));
export type SnapshotOfSet = z.infer<typeof snapshotOfSetSchema>;

export interface SnapshotSet {
  snapshots: SnapshotOfSet[];
  /** When CreateSnapshots returned: the point in time of every snapshot of the set. */
  createdAt: string;
}

export interface SnapshotSetRequest {
  cluster: string;
  backupId: string;
  instanceId: string;
  /** Exactly the volumes that hold PGDATA, tablespaces and pg_wal. */
  volumeIds: string[];
  /**
   * The backup's repository: when given, the call is recorded in the manifest
   * before it is made and the snapshot ids right after, so that a repeated
   * call never takes a second set (see createSnapshotSet).
   */
  repository?: Repository;
  /** What `pgsnap begin --volumes` found of each volume: kept in the manifest for a restore. */
  hostVolumes?: HostVolume[];
}

/** One volume as the host's discovery reports it (`begin --volumes`). */
export const hostVolumeSchema = z.object({
  volumeId: z.string(),
  mountPoint: z.optional(z.string()),
  fstype: z.optional(z.string()),
  fsUuid: z.optional(z.string()),
  partition: z.optional(z.int()),
  paths: z.optional(
    z.array(
      z.object({
        role: z.enum(['data', 'tablespace', 'wal']),
        path: z.string(),
        tablespaceOid: z.optional(z.string()),
      }),
    ),
  ),
});
export type HostVolume = z.infer<typeof hostVolumeSchema>;

/** Every snapshot in this account and region tagged with the backupId, across pages. */
export async function snapshotsOfBackup(ec2: EC2Client, backupId: string): Promise<Snapshot[]> {
  const found: Snapshot[] = [];
  const pages = paginateDescribeSnapshots(
    { client: ec2 },
    { OwnerIds: ['self'], Filters: [{ Name: `tag:${snapshotTags.backupId}`, Values: [backupId] }] },
  );
  for await (const page of pages) found.push(...(page.Snapshots ?? []));
  return found;
}

/**
 * The snapshots of `ids` that exist. DescribeSnapshots with SnapshotIds fails
 * the whole call with InvalidSnapshot.NotFound when one of them does not exist
 * ("The specified snapshot does not exist": EC2 API reference, error codes);
 * then a `snapshot-id` filter, which returns only the ones that exist and
 * fails on none, tells which are missing.
 */
export async function snapshotsById(ec2: EC2Client, ids: string[]): Promise<Snapshot[]> {
  try {
    return (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids }))).Snapshots ?? [];
  } catch (error) {
    if ((error as Error).name !== 'InvalidSnapshot.NotFound') throw error;
  }
  const found: Snapshot[] = [];
  const pages = paginateDescribeSnapshots(
    { client: ec2 },
    { Filters: [{ Name: 'snapshot-id', Values: ids }] },
  );
  for await (const page of pages) found.push(...(page.Snapshots ?? []));
  return found;
}

/**
 * How long a snapshot may be missing from DescribeSnapshots after it was
 * created before it counts as gone. The EC2 API is eventually consistent: a
 * resource just created can be reported as not existing for a while, and AWS
 * advises retrying with backoff "up to a few minutes"
 * (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
 */
export const visibilityGraceMs = 5 * 60_000;
