/** Lambda for "Check the restore request": the restore state machine's first step. */

import { readCatalog } from '#domain/catalog';
import { parseWith } from '#domain/parse';
import { openRepository } from '#domain/repository/open';
import type { RestorePlan } from '#domain/restore/plan';
import { prepareRestore, prepareRestoreEventSchema } from '#domain/restore/steps';
import { logged } from './commons/logged.ts';

async function handle(event: unknown): Promise<RestorePlan> {
  const catalog = await readCatalog();
  return prepareRestore(
    openRepository,
    parseWith(prepareRestoreEventSchema, event, 'the prepare-restore event'),
    catalog,
  );
}

export const handler = logged('prepare-restore', handle);
