/**
 * The metrics the agent publishes from each database host, shared by the
 * agent (which publishes them) and the stack (which alarms on them and grants
 * PutMetricData for this namespace only).
 *
 * A namespace of their own, not the backup state machine's `pgsnap`: the
 * instance role may publish here, and a host that could publish into `pgsnap`
 * could also send `BackupCompleted` and keep the RPO alarm quiet while no
 * backup completes.
 */
export const hostMetrics = {
  namespace: 'pgsnap/hosts',
  dimension: 'Cluster',
  /** Seconds since the last archived WAL file while `.ready` files wait; 0 when none waits. */
  archiveLag: 'ArchiveLagSeconds',
  /** `.ready` files in pg_wal/archive_status: segments the archiver has not archived yet. */
  readyFiles: 'ReadyFiles',
  /** Failed archive_command runs since the previous sample (pg_stat_archiver.failed_count's increase). */
  archiveFailures: 'ArchiveFailures',
  /** Free bytes of the file system that holds pg_wal, as an unprivileged user sees them. */
  walVolumeFreeBytes: 'WalVolumeFreeBytes',
  /** Ready files the async pusher (wal-push --async) has not stored yet; only where it is used. */
  pusherBacklog: 'PusherBacklog',
} as const;
