/** `pgsnap doctor`: will a backup and a restore from this host work? */
import { UsageError } from '#domain/errors';
import { parse } from '../cli/args.ts';
import { policyFrom, retentionFlags } from '../cli/retention-flags.ts';
import { printUsage } from '../cli/usage.ts';
import type { CheckResult } from '../doctor/check.ts';
import { createContext } from '../host/context.ts';
import { open } from '../host/repository.ts';
import { fromEnvironment, secondsFromEnvironment } from '../host/settings.ts';
import { connect } from '../postgres/client.ts';

export const doctorUsage = `pgsnap doctor --repo URL --cluster NAME [--local] [--spool-dir DIR] [--json]
             [--fleet [--keep-last N] [--keep-days D] [--thin H,D,W,M]]
pgsnap doctor --restore-target [--repo URL --cluster NAME | --major N] [--local] [--json]

Checks, on a database host, everything a backup and a restore from it need,
and says for each failure what to do: the agent's version; the connection and
the role's rights; wal_level, archive_mode, that archive_command is pgsnap's
and the archiver healthy; pg_wal's free space; the repository reachable,
pinned to this cluster, its newest WAL file fetched and verified; the instance
role's credentials and rights (probes that change nothing: a made-up task
token, EC2 DryRun) and one archive-health sample published; the SSM agent
running; PGDATA, tablespaces and pg_wal on EBS volumes; the clock
synchronized. Connects with the PG* settings, as the agent does.

With --restore-target, checks a restore or drill host (the drill AMI)
instead: the agent where the restore document runs it; PostgreSQL of the
source's major version where the restore looks (PGSNAP_PG_BIN, else
/usr/lib/postgresql/N/bin), with the libraries the source preloads; the
postgres user with the source's uid; the SSM agent running or enabled; and
the AWS endpoints the host talks to (STS, S3, SSM and its messages, Step
Functions, KMS, CloudWatch) reachable. The source's version, libraries and
uid come from the newest completed backup of --cluster in --repo, or --major.

--local          a host without AWS (btrfs, copy or exec provider): skip the
                 instance role, SSM and EBS checks (the SSM agent and the
                 endpoints with --restore-target)
--restore-target check a restore target, not a database host
--major N        the PostgreSQL major version to look for (with
                 --restore-target, without a repository)
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
  'restore-target': { type: 'boolean', default: false },
  major: { type: 'string' },
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
  if (values.major !== undefined && !values['restore-target']) {
    throw new UsageError('--major goes with --restore-target: a database host checks its own server');
  }
  const major = values.major;
  if (major !== undefined && !/^(?:9\.6|[1-9]\d)$/.test(major)) {
    throw new UsageError(`--major ${major}: give a PostgreSQL major version such as 15 (or 9.6)`);
  }
  const hostProbe = { processNames: () => host.procProcessNames(), run: host.runProgram, discover };
  const report = values['restore-target']
    ? await (await import('../doctor/restore-target.ts')).runRestoreTargetDoctor({
        ...(major ? { major } : {}),
        repository: choice && { ...choice, open: () => open(choice) },
        pgBin: fromEnvironment('pgBin'),
        local: values.local,
        env: process.env,
        host: hostProbe,
        checkLimitMs: secondsFromEnvironment('doctorCheckTimeout'),
        onStart: (check) => ctx.out.progress(`checking ${check}...`),
        onCheck: (c) => ctx.out.progress(line(c)),
      })
    : await runDoctor({
        checkLimitMs: secondsFromEnvironment('doctorCheckTimeout'),
        // As it goes, on stderr: a check that waits shows which one it is, and stdout stays the one result.
        onStart: (check) => ctx.out.progress(`checking ${check}...`),
        onCheck: (c) => ctx.out.progress(line(c)),
        connect: () => connect({ applicationName: 'pgsnap doctor' }),
        repository: choice && { ...choice, open: () => open(choice) },
        spoolRoot: values['spool-dir'] ?? ctx.stateRoot,
        ...(values.fleet ? { fleet: policy ? { policy } : {} } : {}),
        aws: values.local ? undefined : defaultAwsClients,
        host: hostProbe,
      });
  const lines = report.checks.map(line);
  const what = values['restore-target'] ? 'a restore to this host' : 'a backup or a restore from this host';
  lines.push(
    report.ok
      ? `${values['restore-target'] ? 'a restore to this host' : 'backups and restores from this host'} should work`
      : `fix the failures above: ${what} would not work`,
  );
  ctx.out.result({ ...report }, lines);
  const code = report.ok ? 0 : 3;
  // A check given up at its limit may still wait on a socket: it must not keep doctor from exiting.
  setTimeout(() => process.exit(code), 1_000).unref();
  return code;
}
