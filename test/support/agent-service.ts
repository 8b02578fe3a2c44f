/** The resident agent service (`pgsnap agent`) for a test: started on a state directory, always stopped. */
import { onTestFinished } from 'vitest';
import { agentSocketPath } from '../../agent/host/state.ts';
import { request } from '../../agent/session/control.ts';
import { pgsnapBin } from './pgsnap.ts';
import { spawnWatched, type Watched } from './processes.ts';

export interface AgentService {
  pid: number;
  watched: Watched;
  /** What the service says it holds (its `status` request). */
  sessions(): Promise<Array<{ key: string; backupId: string; label: string }>>;
  /** SIGTERM, as systemd stops it; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `pgsnap agent` with only its state directory in its environment, so
 * that it can connect only with what each begin sends it.
 */
export async function startAgentService(stateDir: string): Promise<AgentService> {
  const watched = spawnWatched(process.execPath, [pgsnapBin, 'agent'], { PGSNAP_STATE_DIR: stateDir });
  let exited = false;
  void watched.exited.then(() => {
    exited = true;
  });
  const stop = async () => {
    if (exited) return;
    watched.child.kill('SIGTERM');
    const timer = setTimeout(() => watched.child.kill('SIGKILL'), 20_000);
    await watched.exited;
    clearTimeout(timer);
  };
  onTestFinished(stop);
  await watched.waitFor('listening on');
  return {
    pid: watched.child.pid!,
    watched,
    stop,
    async sessions() {
      const answer = await request(agentSocketPath(stateDir), { op: 'status' });
      if (!answer?.ok) throw new Error(`the agent service did not answer: ${JSON.stringify(answer)}`);
      return answer.result.sessions as Array<{ key: string; backupId: string; label: string }>;
    },
  };
}
