/** `pgsnap agent`: the resident agent service, which holds backup sessions so that begin needs no holder. */
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { defaultStateRoot } from '../session/state.ts';

export const agentUsage = `pgsnap agent [--state-dir DIR]

Runs the agent service in the foreground until SIGTERM (run it under systemd,
see the README). While it runs, pgsnap begin asks it to hold the backup
session instead of starting a holder process, which saves one Node.js start
per backup; sessions of several clusters are held at once. Without it, begin
starts a holder as before. Stopping the service aborts the backups it holds.
It listens on agent.sock (0600) in the state directory (0700), which must be
the one begin, end and status use (PGSNAP_STATE_DIR or --state-dir).`;

export async function agentCommand(args: string[]): Promise<number> {
  const { values } = parse('agent', args, {});
  if (values.help) return printUsage(agentUsage);
  const { runAgentService } = await import('../session/service.ts');
  return runAgentService(values['state-dir'] ?? defaultStateRoot());
}
