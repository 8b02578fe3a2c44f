/** pgbench against a test cluster, and the check that its data came back. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type Cluster, clientBin } from './cluster.ts';

const run = promisify(execFile);

/** Runs pgbench (the newest client found) with the cluster's libpq settings. */
export async function pgbench(cluster: Cluster, args: string[]): Promise<void> {
  await run(clientBin('pgbench') ?? 'pgbench', args, { env: { ...process.env, ...cluster.env } });
}

/** The sum of pgbench's account balances: it changes with every transaction, so a restore that kept them all has the same. */
export async function balanceSum(cluster: Cluster): Promise<string> {
  const [row] = await cluster.query<{ sum: string }>(
    'SELECT sum(abalance)::text AS sum FROM pgbench_accounts',
  );
  return row!.sum;
}
