/** What a test checks of the WAL in a repository. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Cluster } from './cluster.ts';
import type { TestRepository } from './repository.ts';

/** `count` files archived, each decodes, verifies, and matches what pg_wal still holds of it. */
export async function expectArchivedIntact(
  repo: TestRepository,
  cluster: Cluster,
  count: number,
): Promise<void> {
  const repository = await repo.open();
  try {
    const pin = await repository.requirePin();
    const stored = await repository.listWal();
    expect(stored.length).toBe(count);
    for (const { name } of stored) {
      const content = await repository.fetchWal(pin, name);
      const local = join(cluster.dataDir, 'pg_wal', name);
      if (existsSync(local)) expect(content!.equals(readFileSync(local))).toBe(true);
    }
  } finally {
    repository.close();
  }
}
