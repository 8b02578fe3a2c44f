/**
 * The resident agent service (`pgsnap agent`): a long-lived process that holds
 * backup sessions in-process, for any number of clusters at once, so that a
 * `begin` asks it over `<state root>/agent.sock` instead of starting a holder
 * process of its own (one Node.js start less per backup). Each session is the
 * same code as a holder's (session.ts), with the same state files and control
 * socket, so status, end and abort do not know which kind holds it.
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateLabel } from '#domain/backup/input';
import { PreconditionError, UsageError } from '#domain/errors';
import { validateBackupId, validateClusterName } from '#domain/ids';
import { maxDurationLimitMs } from '../host/settings.ts';
import { agentSocketPath, ClusterState, ensurePrivateDir } from '../host/state.ts';
import type { MonitorConfig } from '../metrics/monitor.ts';
import type { SessionConfig } from './config.ts';
import { type AgentRequest, answerError, listen, request } from './control.ts';
import { type HeldSession, holdSession } from './session.ts';

interface Held {
  config: SessionConfig;
  held: HeldSession;
}

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} [agent ${process.pid}] ${message}\n`);
}

/** A begin's request, checked as the CLI checked it: the socket's owner could still send anything. */
function checkConfig(stateRoot: string, config: SessionConfig): SessionConfig {
  if (resolve(config.stateRoot) !== resolve(stateRoot)) {
    throw new UsageError(`this agent service keeps its state in ${stateRoot}, not in ${config.stateRoot}`);
  }
  if (
    !Number.isInteger(config.maxDurationMs) ||
    config.maxDurationMs <= 0 ||
    config.maxDurationMs > maxDurationLimitMs
  ) {
    throw new UsageError(
      `maxDurationMs must be a positive integer of at most ${maxDurationLimitMs}, not ${config.maxDurationMs}`,
    );
  }
  return {
    stateRoot,
    // A cluster name, or the pg-<port>-<hash> key of a connection target: never a path.
    key: validateClusterName(config.key),
    backupId: validateBackupId(config.backupId),
    label: validateLabel(config.label),
    fast: config.fast === true,
    maxDurationMs: config.maxDurationMs,
    ...(Number.isInteger(config.ownerPid) && config.ownerPid! > 0 ? { ownerPid: config.ownerPid! } : {}),
  };
}

export interface AgentServiceOptions {
  /** Watch this cluster's WAL archiving too (metrics/monitor.ts). */
  monitor?: MonitorConfig;
}

/** Runs until SIGTERM or SIGINT, which abort the sessions still held (a held session cannot outlive us). */
export async function runAgentService(stateRoot: string, options: AgentServiceOptions = {}): Promise<number> {
  ensurePrivateDir(stateRoot);
  const socketPath = agentSocketPath(stateRoot);
  const running = await request(socketPath, { op: 'status' }).catch(() => undefined);
  if (running?.ok) {
    throw new PreconditionError(
      `an agent service already runs here (pid ${running.result.pid}, ${socketPath}); stop it first`,
    );
  }
  // Left by an agent service that was killed: nobody listens on it.
  rmSync(socketPath, { force: true });
  // Loaded now rather than by the first begin, which would wait for it.
  await import('pg');

  const sessions = new Map<string, Held>();
  const begin = (config: SessionConfig, env: Record<string, string>): Promise<Record<string, unknown>> => {
    const current = sessions.get(config.key);
    if (current) {
      throw new PreconditionError(
        `backup ${current.config.backupId} (label ${JSON.stringify(current.config.label)}) is in progress ` +
          `here, held by the agent service (pid ${process.pid}); end it with pgsnap end or pgsnap abort ` +
          'before starting another',
      );
    }
    return new Promise((resolveBegin, rejectBegin) => {
      const held = holdSession(config, {
        pid: process.pid,
        heldBy: 'agent',
        env,
        log: (message) => log(`${config.key} ${config.backupId}: ${message}`),
        report: (report) => {
          if (report.ok) return resolveBegin({ session: report.session });
          // Answer only once the session is closed, as begin does with a holder, so nothing is left in backup mode.
          void held.finished.then(() => rejectBegin(answerError(report.error)));
        },
      });
      sessions.set(config.key, { config, held });
      void held.finished.then(() => {
        if (sessions.get(config.key)?.held === held) sessions.delete(config.key);
      });
    });
  };

  const server = await listen<AgentRequest>(socketPath, async (message) => {
    switch (message.op) {
      case 'status':
        return {
          pid: process.pid,
          stateRoot,
          sessions: [...sessions.values()].map(({ config }) => ({
            key: config.key,
            backupId: config.backupId,
            label: config.label,
          })),
        };
      case 'begin': {
        const config = checkConfig(stateRoot, message.config);
        // Fails early on a state directory that is not ours, before anything is recorded in it.
        new ClusterState(stateRoot, config.key);
        return begin(config, message.env);
      }
      default:
        throw new UsageError(`unknown request ${JSON.stringify((message as { op?: unknown }).op)}`);
    }
  });
  const monitor = options.monitor
    ? await (await import('../metrics/monitor.ts')).startMonitor(options.monitor, log)
    : undefined;
  log(`listening on ${socketPath}`);
  // A closed terminal is no reason to drop the backups held here.
  process.on('SIGHUP', () => {});

  const signal = await new Promise<NodeJS.Signals>((resolveSignal) => {
    process.once('SIGTERM', () => resolveSignal('SIGTERM'));
    process.once('SIGINT', () => resolveSignal('SIGINT'));
  });
  log(`received ${signal}; aborting ${sessions.size} session(s) and stopping`);
  server.close();
  rmSync(socketPath, { force: true });
  await monitor?.stop();
  await Promise.all(
    [...sessions.values()].map(({ held }) => held.abort(`the agent service received ${signal}`)),
  );
  return 0;
}
