/** What `pgsnap doctor` reports: one result per check, each saying what to do when it is not ok. */

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** A short stable name (`archive_mode`, `repository.pin`), for programs reading --json. */
  check: string;
  status: CheckStatus;
  /** What was found; for warn and fail, also what to do. */
  message: string;
}

export const ok = (check: string, message: string): CheckResult => ({ check, status: 'ok', message });
export const warn = (check: string, message: string): CheckResult => ({ check, status: 'warn', message });
export const fail = (check: string, message: string): CheckResult => ({ check, status: 'fail', message });
export const skip = (check: string, message: string): CheckResult => ({ check, status: 'skip', message });

/** The error's name, for matching AWS's answers (AccessDenied, DryRunOperation). */
export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}
