/** The flags of a begin, which `pgsnap begin` and `pgsnap run` both take, mapped onto begin's options. */

import { formatDuration, parseDuration, validateLabel } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { validateBackupId } from '#domain/ids';
import { type BeginOptions, defaultMaxDurationMs } from '../session/begin.ts';
import { maxDurationLimitMs } from '../session/config.ts';

export const beginFlags = {
  label: { type: 'string' },
  fast: { type: 'boolean', default: false },
  'max-duration': { type: 'string' },
  'backup-id': { type: 'string' },
} as const;

function parseMaxDuration(text: string): number {
  const millis = parseDuration(text, '--max-duration');
  if (millis > maxDurationLimitMs) {
    throw new UsageError(
      `--max-duration ${text} is longer than pgsnap can time (at most ${formatDuration(maxDurationLimitMs)}, ` +
        'about 24 days); a backup is held for the minutes its snapshots take: give, for example, 1h or 6h',
    );
  }
  return millis;
}

export function parseBeginOptions(values: {
  label?: string;
  fast?: boolean;
  'max-duration'?: string;
  'backup-id'?: string;
}): BeginOptions {
  return {
    label: validateLabel(values.label ?? ''),
    fast: values.fast ?? false,
    maxDurationMs: values['max-duration'] ? parseMaxDuration(values['max-duration']) : defaultMaxDurationMs,
    ...(values['backup-id'] ? { backupId: validateBackupId(values['backup-id']) } : {}),
  };
}
