/** `pgsnap agent`: the resident agent service, which holds backup sessions so that begin needs no holder. */
import { resolve } from 'node:path';
import { parse, refuseTogether } from '../cli/args.ts';
import { createOutput } from '../cli/output.ts';
import { singleExecutable } from '../cli/self.ts';
import { printUsage } from '../cli/usage.ts';
import { defaultStateRoot } from '../session/state.ts';

export const agentUsage = `pgsnap agent [--state-dir DIR]
pgsnap agent install [--print] [--root DIR] [--bin PATH] [--executable FILE] [--state-dir DIR] [--json]

Runs the agent service in the foreground until SIGTERM (run it under systemd,
see the README). While it runs, pgsnap begin asks it to hold the backup
session instead of starting a holder process, which saves one Node.js start
per backup; sessions of several clusters are held at once. Without it, begin
starts a holder as before. Stopping the service aborts the backups it holds.
It listens on agent.sock (0600) in the state directory (0700), which must be
the one begin, end and status use (PGSNAP_STATE_DIR or --state-dir).

install, as root, puts this single executable at --bin (default
/usr/local/bin/pgsnap; --executable FILE installs another one), writes the
systemd unit /etc/systemd/system/pgsnap-agent.service, and creates
/etc/pgsnap/pgsnap.env (0600, root's) with every setting commented out; an
existing settings file is kept. Files are replaced by rename, so an upgrade
never leaves a partial file. install restarts nothing: a running agent service
keeps its sessions on the previous executable, and install says what it
holds (restarting it aborts those backups). --root DIR writes under DIR
instead of /; --print writes nothing and prints the unit and the settings file.`;

export async function agentCommand(args: string[]): Promise<number> {
  if (args[0] === 'install') return installCommand(args.slice(1));
  const { values } = parse('agent', args, {});
  if (values.help) return printUsage(agentUsage);
  const { runAgentService } = await import('../session/service.ts');
  return runAgentService(values['state-dir'] ?? defaultStateRoot());
}

async function installCommand(args: string[]): Promise<number> {
  const { values } = parse('agent install', args, {
    print: { type: 'boolean', default: false },
    root: { type: 'string' },
    bin: { type: 'string' },
    executable: { type: 'string' },
  });
  if (values.help) return printUsage(agentUsage);
  refuseTogether('agent install', values, ['print', 'root']);
  refuseTogether('agent install', values, ['print', 'executable']);
  const install = await import('../install/install-agent.ts');
  const bin = values.bin ?? install.defaultBinPath;
  const out = createOutput(values.json);
  if (values.print) {
    const unit = install.unitFile(bin);
    const settings = install.settingsFile();
    out.result(
      {
        unit: { path: install.unitPath, content: unit },
        settings: { path: install.settingsPath, content: settings },
      },
      [unit, settings.trimEnd()],
    );
    return 0;
  }
  const executable = values.executable
    ? resolve(values.executable)
    : singleExecutable()
      ? process.execPath
      : undefined;
  if (values.executable === undefined && executable === undefined) {
    process.stderr.write(
      'pgsnap agent install: this pgsnap is not a single executable; installing the unit and the settings ' +
        'only (install -m 0755 dist/pgsnap-linux-<arch> /usr/local/bin/pgsnap, or --executable FILE)\n',
    );
  }
  const root = resolve(values.root ?? '/');
  const report = await install.installAgent({
    root,
    bin,
    executable,
    stateRoot: values['state-dir'] ?? defaultStateRoot(),
  });
  out.result({ ...report }, [
    ...report.files.map((file) => `${file.action.padEnd(8)} ${file.path}`),
    `next: ${report.next}`,
  ]);
  return 0;
}
