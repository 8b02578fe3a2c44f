/**
 * What the backup state machine emits for the alarms and the operator's own
 * rules to watch: CloudWatch metrics and EventBridge events.
 */

/** Namespace and names of the metrics the alarms watch. */
export const backupMetrics = {
  namespace: 'pgsnap',
  completed: 'BackupCompleted',
  failed: 'BackupFailed',
  dimension: 'Cluster',
} as const;

/** EventBridge source and detail types of the announcements. */
export const backupEvents = {
  source: 'pgsnap',
  completed: 'pgsnap backup completed',
  failed: 'pgsnap backup failed',
} as const;

/** The metric of a failed DR copy (in the namespace and with the dimension of `backupMetrics`). */
export const copyMetrics = { failed: 'CopyFailed' } as const;

/** The detail type of a failed DR copy's announcement (from the source of `backupEvents`). */
export const copyEvents = { failed: 'pgsnap copy failed' } as const;

/** The durations of a completed backup, published by record-backup in `backupMetrics`' namespace. */
export { backupDurationMetrics } from '#domain/backup/durations';

/** What the agent on each database host publishes (domain/host-metrics.ts): archive health. */
export { hostMetrics } from '#domain/host-metrics';
