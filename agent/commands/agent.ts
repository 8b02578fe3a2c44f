/** `pgsnap agent`: the resident agent service, which holds backup sessions so that begin needs no holder. */
import { resolve } from 'node:path';
import { formatDuration } from '#domain/backup/input';
import { UsageError } from '#domain/errors';
import { parse, refuseTogether } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { createOutput } from '../host/output.ts';
import { singleExecutable } from '../host/self.ts';
import { settingsFrom } from '../host/settings.ts';
import type { MonitorConfig } from '../metrics/monitor.ts';

export const agentUsage = `pgsnap agent [--state-dir DIR] [--cluster NAME [--metrics-interval D]
             [--metrics-listen 127.0.0.1:PORT] [--metrics-cloudwatch on|off] [--spool-dir DIR]]
pgsnap agent install [--print] [--root DIR] [--bin PATH] [--executable FILE] [--state-dir DIR] [--json]

Runs the agent service in the foreground until SIGTERM (run it under systemd,
see the README). While it runs, pgsnap begin asks it to hold the backup
session instead of starting a holder process, which saves one Node.js start
per backup; sessions of several clusters are held at once. Without it, begin
starts a holder as before. Stopping the service aborts the backups it holds.
It listens on agent.sock (0600) in the state directory (0700), which must be
the one begin, end and status use (PGSNAP_STATE_DIR or --state-dir).

With a cluster named (--cluster or PGSNAP_CLUSTER) it also watches that
cluster's WAL archiving, connecting with the PG* settings of its environment
(a role with pg_monitor): every --metrics-interval (default 1m) it samples
pg_stat_archiver, the .ready files, pg_wal's free space and the async
pusher's backlog, and publishes ArchiveLagSeconds, ReadyFiles,
ArchiveFailures, WalVolumeFreeBytes (and PusherBacklog) to CloudWatch in the
namespace pgsnap/hosts (AWS_REGION and the instance role; the README's
Monitoring section says what each alarm on them means).

--metrics-listen H:P   also serve them for Prometheus (OpenMetrics) on
                       http://H:P/metrics; loopback addresses only
--metrics-cloudwatch   off: do not publish to CloudWatch (default on)
--spool-dir DIR        the state directory wal-push --async uses, when it is
                       not this one

install, as root, puts this single executable at --bin (default
/usr/local/bin/pgsnap; --executable FILE installs another one), writes the
systemd unit /etc/systemd/system/pgsnap-agent.service, and creates
/etc/pgsnap/pgsnap.env (0600, root's) with every setting commented out; an
existing settings file is kept. Files are replaced by rename, so an upgrade
never leaves a partial file. install restarts nothing: a running agent service
keeps its sessions on the previous executable, and install says what it
holds (restarting it aborts those backups). --root DIR writes under DIR
instead of /; --print writes nothing and prints the unit and the settings file.`;

const flags = {
  'metrics-interval': { type: 'string' },
  'metrics-listen': { type: 'string' },
  'metrics-cloudwatch': { type: 'string' },
  'spool-dir': { type: 'string' },
} as const;

export async function agentCommand(args: string[]): Promise<number> {
  if (args[0] === 'install') return installCommand(args.slice(1));
  const { values } = parse('agent', args, flags);
  if (values.help) return printUsage(agentUsage);
  const { cluster, stateDir: stateRoot } = settingsFrom({
    ...(values.cluster !== undefined ? { cluster: values.cluster } : {}),
    ...(values['state-dir'] !== undefined ? { 'state-dir': values['state-dir'] } : {}),
  });
  const { runAgentService } = await import('../session/service.ts');
  if (cluster === undefined) {
    const given = Object.keys(flags).filter((flag) => values[flag as keyof typeof flags] !== undefined);
    if (given.length > 0) {
      throw new UsageError(
        `pgsnap agent: ${given.map((f) => `--${f}`).join(', ')} needs the cluster whose archiving to watch: ` +
          'give --cluster NAME or set PGSNAP_CLUSTER',
      );
    }
    return runAgentService(stateRoot);
  }
  const cloudwatch = values['metrics-cloudwatch'] ?? 'on';
  if (cloudwatch !== 'on' && cloudwatch !== 'off') {
    throw new UsageError(
      `pgsnap agent: --metrics-cloudwatch is on or off, not ${JSON.stringify(cloudwatch)}`,
    );
  }
  const intervalMs = settingsFrom({ 'metrics-interval': values['metrics-interval'] }).metricsIntervalMs;
  if (intervalMs < 1_000 || intervalMs > 10 * 60_000) {
    throw new UsageError(
      `pgsnap agent: --metrics-interval ${formatDuration(intervalMs)} is outside 1s to 10m ` +
        "(the fleet's ClustersWithoutArchiveHealth alarm counts a host without a sample for 15 minutes)",
    );
  }
  const { parseListen } = await import('../metrics/openmetrics.ts');
  const listen = values['metrics-listen'] ? parseListen(values['metrics-listen']) : undefined;
  if (cloudwatch === 'off' && !listen) {
    throw new UsageError(
      'pgsnap agent: with --metrics-cloudwatch off, give --metrics-listen, or the samples go nowhere',
    );
  }
  if (cloudwatch === 'on' && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION) {
    throw new UsageError(
      "pgsnap agent: publishing to CloudWatch needs the instance's region: set AWS_REGION in the service's " +
        'environment (or --metrics-cloudwatch off)',
    );
  }
  const publisher =
    cloudwatch === 'on' ? (await import('../metrics/cloudwatch.ts')).cloudWatchPublisher() : undefined;
  const monitor: MonitorConfig = {
    cluster,
    intervalMs,
    spoolRoot: values['spool-dir'] ?? stateRoot,
    ...(listen ? { listen } : {}),
    ...(publisher ? { publisher } : {}),
  };
  return runAgentService(stateRoot, { monitor });
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
    stateRoot: settingsFrom({ 'state-dir': values['state-dir'] }).stateDir,
  });
  out.result({ ...report }, [
    ...report.files.map((file) => `${file.action.padEnd(8)} ${file.path}`),
    `next: ${report.next}`,
  ]);
  return 0;
}
