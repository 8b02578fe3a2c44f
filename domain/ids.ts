/**
 * The ids and names every layer passes around, in one place below backup/,
 * restore/ and repository/: what each may be (the patterns the SSM documents,
 * the manifest and the catalog are made from), how new ones are made, and the
 * two ways a wrong one is refused at the edge. The agent's flags say which
 * flag to fix (`--backup-id …`, validate*); a Lambda's event schema names the
 * event's field (the *Schema values, through parseWith).
 *
 * The patterns are kept to what both JavaScript and the (Java) regular
 * expressions SSM evaluates read the same way: no \d, no flags.
 */
import { createHash, randomBytes } from 'node:crypto';
import { UsageError } from './errors.ts';
import * as z from './zod.ts';

/** What a backupId is (see newBackupId); the manifest, the catalog's listing and the SSM document use it. */
export const backupIdPattern = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/;

/** What a restoreId is: `r-` and a backupId's shape, so restores sort by when they were asked for. */
export const restoreIdPattern = /^r-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/;

/** What a cluster name is; the SSM documents use it. */
export const clusterNamePattern = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The time part of a backupId: UTC, to the second (`20261121T143000Z`). */
export function idStamp(time: Date): string {
  return time
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** A backupId sorts by time and is unique: `20261121T143000Z-a1b2c3`. */
export function newBackupId(now = new Date()): string {
  return `${idStamp(now)}-${randomBytes(3).toString('hex')}`;
}

/**
 * The backupId of something that has a time and a name, the same every time
 * it is asked: the time to the second, then the first six hex digits of the
 * SHA-256 of the name (its UTF-8 bytes), so that any name gives a valid one.
 */
export function backupIdFrom(time: Date, name: string): string {
  return `${idStamp(time)}-${createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 6)}`;
}

export function newRestoreId(now = new Date()): string {
  return `r-${newBackupId(now)}`;
}

export function isBackupId(text: string): boolean {
  return backupIdPattern.test(text);
}

/** `--backup-id`, as the agent's commands take it. */
export function validateBackupId(backupId: string): string {
  if (!backupIdPattern.test(backupId)) {
    throw new UsageError(
      `--backup-id ${JSON.stringify(backupId)} is not a backupId; expected the form 20261121T143000Z-a1b2c3`,
    );
  }
  return backupId;
}

const clusterNameRule =
  '1-63 lower-case letters, digits, . _ -, starting with a letter or digit (e.g. orders-db)';

/** A cluster name as the agent takes it (`--cluster`, PGSNAP_CLUSTER, the repository's folder). */
export function validateClusterName(name: string): string {
  if (!clusterNamePattern.test(name)) {
    throw new UsageError(`cluster name ${JSON.stringify(name)} is not valid: use ${clusterNameRule}`);
  }
  return name;
}

/** A backupId in an event or a request (a Lambda's message names the field: `backupId: expected …`). */
export const backupIdSchema = z
  .string()
  .check(z.regex(backupIdPattern, 'expected a backupId of the form 20261121T143000Z-a1b2c3'));

/** A restoreId in an event or a request. */
export const restoreIdSchema = z
  .string()
  .check(z.regex(restoreIdPattern, 'expected a restoreId of the form r-20261121T143000Z-a1b2c3'));

/** A cluster name in an event or a request. */
export const clusterNameSchema = z.string().check(z.regex(clusterNamePattern, `expected ${clusterNameRule}`));
