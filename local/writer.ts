/** A client that keeps inserting rows and knows which ones were committed. */
import type pg from 'pg';

export interface Writer {
  /** The highest id whose INSERT had committed (returned) so far. */
  readonly lastCommitted: number;
  stop(): Promise<void>;
}

export function startWriter(client: pg.Client, tables: string[], pauseMs = 2, startAfter = 0): Writer {
  let lastCommitted = startAfter;
  let running = true;
  const loop = (async () => {
    let id = startAfter;
    while (running) {
      id += 1;
      for (const table of tables) {
        await client.query(`INSERT INTO ${table} (id, payload) VALUES ($1, repeat('x', 200))`, [id]);
      }
      lastCommitted = id;
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    get lastCommitted() {
      return lastCommitted;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}
