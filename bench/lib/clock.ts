/** Wall-clock time in epoch milliseconds, to the fraction: what pgbench's log and the server's log are read in. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
