/**
 * An endpoint that accepts connections and never answers: what a stopped
 * server behind a load balancer, a dropped route or a swallowing proxy looks
 * like to a client, and unlike a refused port, something only a time limit
 * gets out of. Closed by the test (blackholeForTest) or by close().
 */
import { createServer, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';

export interface Blackhole {
  port: number;
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** Connections accepted so far: proof the client reached it. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    // Read and drop whatever comes, answer nothing.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A blackhole closed when the test finishes. */
export async function blackholeForTest(): Promise<Blackhole> {
  const hole = await startBlackhole();
  onTestFinished(() => hole.close());
  return hole;
}

/** The s3:// repository URL of a bucket behind `hole`. */
export function blackholeRepositoryUrl(hole: Blackhole): string {
  return `s3://pgsnap-test/repo?endpoint=${encodeURIComponent(hole.endpoint)}&path-style=true&region=us-east-1`;
}
