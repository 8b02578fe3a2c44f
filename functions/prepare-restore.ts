/** Lambda for "Check the restore request": the restore state machine's first step. */

import { jsonText, parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import type { RestorePlan } from '#domain/restore/plan';
import { prepareRestore, prepareRestoreEventSchema, restoreClustersSchema } from '#domain/restore/steps';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({ PGSNAP_CLUSTERS: jsonText(restoreClustersSchema) });

async function handle(event: unknown): Promise<RestorePlan> {
  const { PGSNAP_CLUSTERS } = parseWith(environmentSchema, process.env, 'the prepare-restore environment');
  return prepareRestore(
    openRepository,
    parseWith(prepareRestoreEventSchema, event, 'the prepare-restore event'),
    PGSNAP_CLUSTERS,
  );
}

export const handler = logged('prepare-restore', handle);
