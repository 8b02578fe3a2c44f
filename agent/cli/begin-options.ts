/** The flags of a begin, which `pgsnap begin` and `pgsnap run` both take, mapped onto begin's options. */
import { parseDuration, validateBackupId, validateLabel } from '#domain/backup/input';
import { type BeginOptions, defaultMaxDurationMs } from '../session/begin.ts';

export const beginFlags = {
  label: { type: 'string' },
  fast: { type: 'boolean', default: false },
  'max-duration': { type: 'string' },
  'backup-id': { type: 'string' },
} as const;

export function parseBeginOptions(values: {
  label?: string;
  fast?: boolean;
  'max-duration'?: string;
  'backup-id'?: string;
}): BeginOptions {
  return {
    label: validateLabel(values.label ?? ''),
    fast: values.fast ?? false,
    maxDurationMs: values['max-duration']
      ? parseDuration(values['max-duration'], '--max-duration')
      : defaultMaxDurationMs,
    ...(values['backup-id'] ? { backupId: validateBackupId(values['backup-id']) } : {}),
  };
}
