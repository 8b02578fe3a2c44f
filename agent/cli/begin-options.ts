/** The flags of a begin, which `pgsnap begin` and `pgsnap run` both take, mapped onto begin's options. */
import { validateLabel } from '#domain/backup/input';
import { validateBackupId } from '#domain/ids';
import { settingsFrom } from '../host/settings.ts';
import type { BeginOptions } from '../session/begin.ts';

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
  const label = validateLabel(values.label ?? '');
  const { maxDurationMs } = settingsFrom(
    values['max-duration'] !== undefined ? { 'max-duration': values['max-duration'] } : {},
  );
  return {
    label,
    fast: values.fast ?? false,
    maxDurationMs,
    ...(values['backup-id'] ? { backupId: validateBackupId(values['backup-id']) } : {}),
  };
}
