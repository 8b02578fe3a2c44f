/**
 * The holder: a detached process that owns one backup session between `begin`
 * and `end`, used when no agent service runs (service.ts). It is started
 * by `begin` in a session of its own (setsid), so it survives when begin's
 * whole process group is killed, as SSM Run Command and CI runners do when a
 * command returns. The session itself is session.ts; this file is what a
 * process of its own adds: the report on fd 3, the log on stderr, signals, exit.
 */
import { closeSync, writeSync } from 'node:fs';
import type { SessionConfig } from './config.ts';

export { sessionConfigSchema } from './config.ts';

import { holdSession, type SessionReport } from './session.ts';

/** File descriptor on which the holder tells `begin` that backup mode started (or why not). */
const reportFd = 3;

function report(message: SessionReport): void {
  try {
    writeSync(reportFd, `${JSON.stringify(message)}\n`);
    closeSync(reportFd);
  } catch {
    // begin is gone (killed with its process group): the holder carries on regardless.
  }
}

export async function runHolder(config: SessionConfig): Promise<never> {
  const held = holdSession(config, {
    pid: process.pid,
    heldBy: 'holder',
    env: process.env,
    report,
    // The holder's stderr is the state directory's holder.log.
    log: (message) =>
      process.stderr.write(`${new Date().toISOString()} [holder ${process.pid}] ${message}\n`),
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void held.abort(`holder received ${signal}`));
  }
  process.on('SIGHUP', () => {});
  process.exit(await held.finished);
}
