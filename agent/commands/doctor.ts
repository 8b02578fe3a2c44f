/** `pgsnap doctor`: will a backup and a restore from this host work? */
import { UsageError } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { policyFrom, retentionFlags } from '../cli/retention-flags.ts';
import { printUsage } from '../cli/usage.ts';
import type { CheckResult } from '../doctor/check.ts';
import { createContext } from '../host/context.ts';
import { open } from '../host/repository.ts';
import { secondsFromEnvironment } from '../host/settings.ts';
import { connect } from '../postgres/client.ts';

export const doctorUsage = `pgsnap doctor --repo URL --cluster NAME [--local] [--spool-dir DIR] [--json]
             [--fleet [--keep-last N] [--keep-days D] [--thin H,D,W,M]]

Checks, on a database host, everything a backup and a restore from it need,
and says for each failure what to do: the agent's version; the connection and
the role's rights; wal_level, archive_mode, that archive_command is pgsnap's
and the archiver healthy; pg_wal's free space; the repository reachable,
pinned to this cluster, its newest WAL file fetched and verified; the instance
role's credentials and rights (probes that change nothing: a made-up task
token, EC2 DryRun) and one archive-health sample published; the SSM agent
running; PGDATA, tablespaces and pg_wal on EBS volumes; the clock
synchronized. Connects with the PG* settings, as the agent does.

--local          a host without AWS (btrfs, copy or exec provider): skip the
                 instance role, SSM and EBS checks
--spool-dir DIR  the state directory wal-push --async uses, when it is not
                 this one
--fleet          also count the EBS snapshots every cluster of the repository
                 keeps, per Region, against EBS's 100,000 per Region (a
                 warning from 80 %): projected with the retention that
                 --keep-last, --keep-days and --thin give (as pgsnap retention
                 takes them), else as the catalogs hold them now

Exits 0 when nothing fails (warnings say what pgsnap cannot confirm), 3 when
a check fails. Each check is printed on stderr as it runs and gets
PGSNAP_DOCTOR_CHECK_TIMEOUT seconds (default 60); one that does not answer in
time fails, and the next checks still run.`;

const flags = {
  local: { type: 'boolean', default: false },
  'spool-dir': { type: 'string' },
  fleet: { type: 'boolean', default: false },
  ...retentionFlags,
} as const;

export async function doctorCommand(args: string[]): Promise<number> {
  const { values } = parse('doctor', args, flags);
  if (values.help) return printUsage(doctorUsage);
  const policy = policyFrom(values);
  if (policy && !values.fleet) {
    throw new UsageError('pgsnap doctor: --keep-last, --keep-days and --thin go with --fleet');
  }
  const ctx = createContext(values);
  const { runDoctor } = await import('../doctor/doctor.ts');
  const { defaultAwsClients } = await import('../doctor/aws-checks.ts');
  const host = await import('../doctor/host-checks.ts');
  const { discover } = await import('../volumes/discover.ts');
  const choice = ctx.repository;
  const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' } as const;
  const line = (c: CheckResult) => `${mark[c.status]}  ${c.check}: ${c.message}`;
  const report = await runDoctor({
    checkLimitMs: secondsFromEnvironment('doctorCheckTimeout'),
    // As it goes, on stderr: a check that waits shows which one it is, and stdout stays the one result.
    onStart: (check) => ctx.out.progress(`checking ${check}...`),
    onCheck: (c) => ctx.out.progress(line(c)),
    connect: () => connect({ applicationName: 'pgsnap doctor' }),
    repository: choice && { ...choice, open: () => open(choice) },
    spoolRoot: values['spool-dir'] ?? ctx.stateRoot,
    ...(values.fleet ? { fleet: policy ? { policy } : {} } : {}),
    aws: values.local ? undefined : defaultAwsClients,
    host: { processNames: () => host.procProcessNames(), run: host.runProgram, discover },
  });
  const lines = report.checks.map(line);
  lines.push(
    report.ok
      ? 'backups and restores from this host should work'
      : 'fix the failures above: a backup or a restore from this host would not work',
  );
  ctx.out.result({ ...report }, lines);
  const code = report.ok ? 0 : 3;
  // A check given up at its limit may still wait on a socket: it must not keep doctor from exiting.
  setTimeout(() => process.exit(code), 1_000).unref();
  return code;
}
