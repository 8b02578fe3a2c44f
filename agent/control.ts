/**
 * The control channel between the CLI and the holder: newline-delimited JSON
 * over a Unix socket created 0600 inside the 0700 state directory.
 */
import { chmodSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';

export type ControlRequest = { op: 'status' } | { op: 'end' } | { op: 'abort'; reason: string };

export type ControlResponse =
  | { ok: true; result: Record<string, unknown> }
  | { ok: false; error: { name: string; message: string } };

export async function listen(
  path: string,
  handle: (request: ControlRequest) => Promise<Record<string, unknown>>,
): Promise<Server> {
  const server = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) return;
      const line = buffer.slice(0, newline);
      buffer = '';
      let request: ControlRequest;
      try {
        request = JSON.parse(line) as ControlRequest;
      } catch {
        socket.end(
          `${JSON.stringify({ ok: false, error: { name: 'UsageError', message: 'bad request' } })}\n`,
        );
        return;
      }
      handle(request).then(
        (result) => socket.end(`${JSON.stringify({ ok: true, result })}\n`),
        (error: Error) =>
          socket.end(
            `${JSON.stringify({ ok: false, error: { name: error.name, message: error.message } })}\n`,
          ),
      );
    });
  });
  // The umask decides the socket's mode at bind(); restrict it before anyone can connect.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
  return server;
}

/** Sends one request; resolves undefined when no holder listens there. */
export function request(path: string, message: ControlRequest): Promise<ControlResponse | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(message)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
    });
    socket.on('end', () => {
      try {
        resolve(JSON.parse(buffer) as ControlResponse);
      } catch {
        reject(new Error(`the holder closed the control channel without an answer (${path})`));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(undefined);
      else reject(error);
    });
  });
}
