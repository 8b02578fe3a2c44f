/**
 * The mark a restore leaves on its target host once it has prepared the
 * restored data directory: a retry of the same restore (its answer to Step
 * Functions was lost) then waits for the server again instead of preparing
 * it twice. It is kept in the agent's private state directory (root's, mode
 * 0700), never on the restored volumes: a postmaster that runs on them, or a
 * postmaster.pid that came with the snapshot, is the volumes' word, and the
 * volumes come from a database host.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as z from '#domain/zod';
import { privateDirectory } from '../host/private-dir.ts';
import { defaultStateRoot } from '../host/settings.ts';
import { writeOwnedFile } from '../postgres/owned-paths.ts';

const markerSchema = z.strictObject({
  restoreId: z.string(),
  pgdata: z.string(),
  stopLsn: z.optional(z.string()),
  preparedAt: z.string(),
});
export type RestoreMarker = z.infer<typeof markerSchema>;

function markerPath(restoreId: string, env: NodeJS.ProcessEnv): string {
  return join(privateDirectory(join(defaultStateRoot(env), 'restores')), `${restoreId}.prepared.json`);
}

/** The mark this host's earlier run of the restore left, if it got as far as preparing PGDATA. */
export function readRestoreMarker(restoreId: string, env: NodeJS.ProcessEnv): RestoreMarker | undefined {
  let text: string;
  try {
    text = readFileSync(markerPath(restoreId, env), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = markerSchema.safeParse(JSON.parse(text));
  return parsed.success && parsed.data.restoreId === restoreId ? parsed.data : undefined;
}

export function writeRestoreMarker(marker: RestoreMarker, env: NodeJS.ProcessEnv): void {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  writeOwnedFile(markerPath(marker.restoreId, env), `${JSON.stringify(marker)}\n`, 0o600, { uid, gid });
}

/** The restore is torn down: its mark goes with it. */
export function removeRestoreMarker(restoreId: string, env: NodeJS.ProcessEnv): void {
  rmSync(markerPath(restoreId, env), { force: true });
}
