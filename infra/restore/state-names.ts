/**
 * The name of every state of the restore state machine, in the order a
 * restore takes them; the local runs (`pgsnap demo`, the e2e tests, the
 * bench) bind their handlers to them.
 */
export const restoreStates = {
  // The restore (restore-steps.ts)
  prepare: 'Check the restore request',
  findInstance: 'Launch or find the target instance',
  checkInstance: 'Check whether the instance is running',
  instanceRunning: 'Is the instance running?',
  waitForInstance: 'Wait for the instance',
  createVolumes: 'Create volumes from the snapshots',
  checkAvailable: 'Check whether the volumes are available',
  allAvailable: 'Are all volumes available?',
  waitForAvailable: 'Wait for the volumes',
  attachVolumes: 'Attach the volumes to the instance',
  checkAttached: 'Check whether the volumes are attached',
  allAttached: 'Are all volumes attached?',
  waitForAttached: 'Wait for the attachments',
  restoreOnHost: 'Restore on the host',
  recordRunning: 'Record the restored cluster and its checks',
  measureInitialization: "Measure the volumes' initialization",
  isDrill: 'Is it a drill?',
  // A drill's teardown (restore-steps.ts)
  teardown: 'Tear down the drill on the host',
  startRelease: 'Start releasing the drill volumes',
  release: 'Release the drill volumes',
  allReleased: 'Are the drill volumes released?',
  waitForRelease: 'Wait for the drill volumes to detach',
  terminate: 'Terminate the drill instance',
  markCompleted: 'Mark the drill completed',
  rtoKnown: 'Is the RTO known?',
  noteRto: 'Note the RTO',
  fullSpeedKnown: 'Is the time to full speed known?',
  noteFullSpeed: 'Note the time to full speed',
  countSucceeded: 'Count the successful restore',
  announceCompleted: 'Announce the restore',
  completed: 'The restore is completed',
  // A request refused before anything was made
  refusedDrill: 'Was the refused request a drill?',
  countRefusedDrill: 'Count the refused drill',
  countRefused: 'Count the refused restore',
  announceRefused: 'Announce the refused restore',
  refused: 'The restore request is refused',
  // The one cleanup path (cleanup-steps.ts)
  hasInstance: 'Was a target instance chosen?',
  cleanupTeardown: 'Unmount on the host after the failure',
  cleanupStartRelease: "Start releasing the failed restore's volumes",
  cleanupRelease: "Release the failed restore's volumes",
  cleanupAllReleased: "Are the failed restore's volumes released?",
  cleanupWaitForRelease: "Wait for the failed restore's volumes to detach",
  cleanupTerminate: 'Terminate the instance the restore launched',
  markFailed: 'Mark the restore failed',
  countFailed: 'Count the failed restore',
  announceFailed: 'Announce the failed restore',
  failed: 'The restore failed',
} as const;

export type RestoreStateName = (typeof restoreStates)[keyof typeof restoreStates];
