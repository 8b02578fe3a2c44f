/** What `begin` asks for: which cluster's state, and the backup to start. */
export interface SessionConfig {
  stateRoot: string;
  key: string;
  backupId: string;
  label: string;
  fast: boolean;
  maxDurationMs: number;
}
