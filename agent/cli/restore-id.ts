/** `--restore-id`, as mount, restore and unmount take it. */
import { UsageError } from '#domain/errors';
import { restoreIdPattern } from '#domain/ids';

export function restoreIdOf(command: string, value: string | undefined): string {
  if (value === undefined)
    throw new UsageError(`pgsnap ${command}: --restore-id is required (r-YYYYMMDDTHHMMSSZ-xxxxxx)`);
  if (!restoreIdPattern.test(value)) {
    throw new UsageError(
      `pgsnap ${command}: --restore-id ${JSON.stringify(value)} is not a restore id; they read r-20261121T143000Z-0a1b2c`,
    );
  }
  return value;
}
