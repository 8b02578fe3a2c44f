/**
 * The control channels: newline-delimited JSON over Unix sockets created 0600
 * inside the 0700 state directory. One per held session (`holder.sock`, for
 * status, end and abort, whichever process holds it), and the agent service's
 * (`agent.sock`, where begin asks for a session).
 */
import { chmodSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import {
  BackupInProgressError,
  BackupInvalidError,
  ConnectionError,
  PreconditionError,
  TimeoutError,
  UsageError,
} from '#domain/errors';
import type { SessionConfig } from './config.ts';

/**
 * `backupId` on end and abort: the backup the asker means. The session refuses
 * a request for another one, so that a late or repeated step (the state
 * machine's) never ends or aborts a backup someone else started, even when
 * that backup began after the asker last looked.
 */
export type ControlRequest =
  | { op: 'status' }
  | { op: 'end'; backupId?: string }
  | { op: 'abort'; reason: string; backupId?: string }
  /** `pgsnap run`'s snapshot command: its process group, stopped if the run is gone before it ends. */
  | { op: 'command'; backupId: string; group: number };

export type AgentRequest =
  | { op: 'status' }
  /** `env`: the libpq settings of the begin that asks, so the session connects as a holder it spawned would. */
  | { op: 'begin'; config: SessionConfig; env: Record<string, string> };

export type ControlResponse =
  | { ok: true; result: Record<string, unknown> }
  | { ok: false; error: { name: string; message: string } };

export async function listen<Request = ControlRequest>(
  path: string,
  handle: (request: Request) => Promise<Record<string, unknown>>,
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
      let request: Request;
      try {
        request = JSON.parse(line) as Request;
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

/**
 * Sends one request; resolves undefined when nobody listens there. A
 * connection reset before any answer arrived (seen under load in CI with the
 * agent service) is retried once: every request is safe to repeat (status
 * reads, abort of a finishing session answers the same, end resumes).
 */
export async function request(
  path: string,
  message: ControlRequest | AgentRequest,
): Promise<ControlResponse | undefined> {
  try {
    return await requestOnce(path, message);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET') throw error;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return requestOnce(path, message);
  }
}

function requestOnce(
  path: string,
  message: ControlRequest | AgentRequest,
): Promise<ControlResponse | undefined> {
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
        reject(new Error(`the control channel ${path} closed without an answer`));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(undefined);
      else reject(error);
    });
  });
}

const typedErrors: Record<string, new (message: string) => Error> = {
  UsageError,
  PreconditionError,
  BackupInProgressError,
  BackupInvalidError,
  ConnectionError,
  TimeoutError,
};

/**
 * The error the other end of a control channel threw, rebuilt with its name:
 * the exit code and Step Functions' Catch both match on it.
 */
export function answerError(error: { name: string; message: string }): Error {
  const typed = typedErrors[error.name];
  const rebuilt = typed ? new typed(error.message) : new Error(error.message);
  rebuilt.name = error.name;
  return rebuilt;
}
