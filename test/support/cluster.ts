/**
 * Throwaway clusters for tests: the product's own local clusters (agent/restore/cluster.ts),
 * on the version matrix: 15 is the system PostgreSQL, 14/16/17/18 the pinned embedded binaries.
 */
export * from '../../agent/restore/cluster.ts';

export const majorVersions = [14, 15, 16, 17, 18] as const;

/** The client tools (pg_amcheck, pgbench, psql) come from the system installation. */
export const systemBin = '/usr/lib/postgresql/15/bin';
