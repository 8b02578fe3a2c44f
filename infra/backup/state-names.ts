/**
 * The name of every state of the backup state machine, in the order a backup
 * takes them. The names are what an operator reads in the console and in the
 * execution history, so they read as sentences; the local runs (`pgsnap
 * demo`, the e2e tests, the bench) bind their handlers to them, so they import
 * them from here rather than typing them again.
 */
export const states = {
  // The backup (backup-steps.ts)
  prepare: 'Check the request and find the cluster',
  refused: 'The backup request is refused',
  leaveToRunning: 'Leave it to the backup already running',
  acquireBudget: 'Take a share of the pending-snapshot budget',
  begin: 'Begin the backup on the host',
  snapshot: "Snapshot the cluster's volumes",
  recordSnapshots: 'Record the snapshots in the manifest',
  end: 'End the backup on the host',
  checkSnapshots: 'Check whether the snapshots are completed',
  allSnapshotsCompleted: 'Are all snapshots completed?',
  waitForSnapshots: 'Wait before checking the snapshots again',
  releaseBudget: 'Return the share of the pending-snapshot budget',
  markCompleted: 'Mark the backup completed in the manifest',
  countCompleted: 'Count the completed backup',
  announceCompleted: 'Announce the completed backup',
  // The DR copy (dr-copy-steps.ts)
  acquireCopies: 'Take a share of the DR copy budget',
  copy: 'Copy the backup to DR',
  copyStarted: 'Is the backup copied to DR?',
  checkCopies: 'Check whether the DR copies are completed',
  allCopiesCompleted: 'Are all DR copies completed?',
  waitForCopies: 'Wait before checking the DR copies again',
  releaseCopies: 'Return the share of the DR copy budget',
  recordCopies: 'Record the completed DR copies',
  noteCopyFailed: 'Note the failed DR copy',
  releaseCopiesOnFailure: "Return the failed copy's share of the DR copy budget",
  recordFailedCopies: 'Record the failed DR copies',
  countCopyFailed: 'Count the failed DR copy',
  announceCopyFailed: 'Announce the failed DR copy',
  // Retention (retention-steps.ts)
  applyRetention: 'Apply retention',
  // Where every completed backup ends (backup-state-machine.ts)
  completed: 'The backup is completed',
  // The one cleanup path (cleanup-steps.ts)
  stillInBackup: 'Can the host still be in backup mode?',
  abort: 'Abort the backup on the host',
  deleteSnapshots: "Delete the backup's snapshots",
  releaseBudgetOnFailure: "Return the failed backup's share of the pending-snapshot budget",
  markFailed: 'Mark the backup failed in the manifest',
  countFailed: 'Count the failed backup',
  announceFailed: 'Announce the failed backup',
  failed: 'The backup failed',
} as const;

/** The name of one state of the backup state machine. */
export type StateName = (typeof states)[keyof typeof states];
