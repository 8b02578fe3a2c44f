/**
 * How long a completed backup took, from its manifest, as CloudWatch metrics
 * in the state machine's namespace (beside BackupCompleted): the window in
 * backup mode, the whole backup, and the snapshots' completion. The
 * record-backup Lambda publishes them when it records a backup as completed.
 *
 * Fleet-wide, without the cluster dimension: each name × cluster would be a
 * custom metric of its own ($0.30 a month each at list price), and nothing
 * alarms on them; the dashboard shows the fleet's distribution, and one
 * cluster's backups have their times in their manifests (`pgsnap backups
 * show`, `pgsnap backups list --all`).
 */
import { type CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import type { Manifest } from '../repository/manifest.ts';

export const backupDurationMetrics = {
  /** From pg_backup_start until pg_backup_stop: how long the server was in backup mode. */
  backupMode: 'BackupModeSeconds',
  /** From pg_backup_start until the backup was recorded as completed. */
  backup: 'BackupSeconds',
  /** From CreateSnapshots until every snapshot was completed. */
  snapshots: 'SnapshotSeconds',
} as const;

/** The metric data of a completed backup; none for a manifest without the times (not completed). */
export function backupDurationData(
  manifest: Manifest,
  options: { snapshotsCreatedAt?: string },
): MetricDatum[] {
  const { startedAt, stoppedAt, completedAt } = manifest.timings;
  if (manifest.state !== 'completed' || !stoppedAt || !completedAt) return [];
  const seconds = (from: string, to: string) => Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);
  const datum = (name: string, value: number): MetricDatum => ({
    MetricName: name,
    Timestamp: new Date(completedAt),
    Value: value,
    Unit: 'Seconds',
  });
  return [
    datum(backupDurationMetrics.backupMode, seconds(startedAt, stoppedAt)),
    datum(backupDurationMetrics.backup, seconds(startedAt, completedAt)),
    datum(backupDurationMetrics.snapshots, seconds(options.snapshotsCreatedAt ?? stoppedAt, completedAt)),
  ];
}

/** Publishes the completed backup's durations in `namespace`; nothing for a backup without them. */
export async function publishBackupDurations(
  cloudwatch: CloudWatchClient,
  manifest: Manifest,
  options: { namespace: string; snapshotsCreatedAt?: string },
): Promise<void> {
  const data = backupDurationData(manifest, {
    ...(options.snapshotsCreatedAt ? { snapshotsCreatedAt: options.snapshotsCreatedAt } : {}),
  });
  if (data.length === 0) return;
  await cloudwatch.send(new PutMetricDataCommand({ Namespace: options.namespace, MetricData: data }));
}
