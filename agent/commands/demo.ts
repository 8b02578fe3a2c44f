/**
 * `pgsnap demo` (`npm start`): the embedded default on one machine. A throwaway
 * cluster under pgbench load, a backup with the copy provider, then the drill:
 * restore to the end of the backup and to a named restore point, check the rows,
 * run pg_amcheck. Everything it made is removed at the end, also after Ctrl-C.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { PreconditionError } from '#domain/errors';
import { formatDuration } from '#domain/input';
import { waitForArchive } from '../archive-wait.ts';
import { parse } from '../cli-args.ts';
import { createContext } from '../context.ts';
import {
  asPostgres,
  Cluster,
  chownTree,
  clientBin,
  newestAvailableMajor,
  ownedDir,
} from '../local/cluster.ts';
import { startWriter, type Writer } from '../local/writer.ts';
import { createOutput } from '../output.ts';
import { prepareDataDirectory, type RecoveryTarget } from '../restore.ts';
import { begin, help } from './begin.ts';
import { end } from './end.ts';

const execFileAsync = promisify(execFile);
/** Aborts every command still running when the demo is interrupted. */
const running = new AbortController();
const run = (file: string, args: string[]) => execFileAsync(file, args, { signal: running.signal });

export const demoUsage = `pgsnap demo [--keep] [--json]

Runs a whole backup and restore drill on this machine with no AWS: a throwaway
PostgreSQL cluster under load, a backup, two restores, and a data check.
Exits 0 only if the restored data checked out.`;

interface DrillResult {
  name: string;
  restoreMs: number;
  expectedRows: number;
  foundRows: number;
  extraRows: number;
  amcheck: 'passed' | 'failed' | 'not available';
  ok: boolean;
}

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse('demo', args, { keep: { type: 'boolean', default: false } });
  if (values.help) return help(demoUsage);
  const out = createOutput(values.json);
  const started = Date.now();
  let step = 0;
  const progress = (message: string) => {
    step += 1;
    out.progress(`[${formatDuration(Date.now() - started).padStart(5)}] ${step}. ${message}`);
  };

  const work = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-demo-')), 0o711);
  if (asPostgres('test', ['-x', work], { allowFailure: true }).status !== 0) {
    rmSync(work, { recursive: true, force: true });
    throw new PreconditionError(
      `the server's user cannot reach ${work} (a parent directory is private); set TMPDIR to a directory it can reach, such as /tmp`,
    );
  }
  const clusters: Cluster[] = [];
  const children: ChildProcess[] = [];
  let writer: Writer | undefined;
  let writerClient: pg.Client | undefined;
  const cleanup = async () => {
    // The writer first: its queries would fail, unhandled, once the server is gone.
    await writer?.stop().catch(() => {});
    await writerClient?.end().catch(() => {});
    running.abort();
    for (const child of children) child.kill('SIGTERM');
    for (const cluster of clusters.reverse()) cluster.stopSync('immediate');
    if (!values.keep) rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    out.progress(`${signal}: stopping and removing everything the demo made`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const major = newestAvailableMajor();
    progress(`starting a throwaway PostgreSQL ${major} cluster in ${work}`);
    const source = await Cluster.create({ major, root: ownedDir(join(work, 'source')) });
    clusters.push(source);
    const tablespaceDir = ownedDir(join(work, 'source', 'tablespace'));
    await source.query(`CREATE TABLESPACE demo_ts LOCATION '${tablespaceDir}'`);
    await source.query('CREATE TABLE demo_events (id bigint PRIMARY KEY, payload text) TABLESPACE demo_ts');

    const pgbench = clientBin('pgbench');
    const pgArgs = ['-h', source.socketDir, '-p', String(source.port), '-U', 'postgres'];
    if (pgbench) {
      progress('loading pgbench data (scale 10, about 160 MB)');
      await run(pgbench, [...pgArgs, '-i', '-q', '-s', '10', 'postgres']);
      const load = spawn(pgbench, [...pgArgs, '-c', '2', '-j', '2', '-T', '3600', 'postgres'], {
        stdio: 'ignore',
      });
      children.push(load);
    }
    writerClient = await source.client();
    writer = startWriter(writerClient, ['demo_events'], 1);
    progress(`load running: ${pgbench ? 'pgbench -c 2, and ' : ''}a writer inserting numbered rows`);
    await new Promise((r) => setTimeout(r, 1_000));

    // The agent takes its connection from the libpq environment, as on a database host.
    Object.assign(process.env, source.env);
    const ctx = createContext({ 'state-dir': join(work, 'state'), json: values.json });
    progress('begin: starting the backup session (pg_backup_start, fast checkpoint)');
    const beginAt = Date.now();
    const session = await begin(ctx, { label: 'pgsnap demo', fast: true, maxDurationMs: 600_000 });
    out.progress(
      `        backup ${session.backupId} in backup mode from ${session.startLsn} (${session.startWalFile})`,
    );

    progress('snapshot (copy provider): copying PGDATA and the tablespace while the load runs');
    const snapshotAt = Date.now();
    const snapshot = join(work, 'snapshot');
    mkdirSync(snapshot);
    await run('cp', ['-a', source.dataDir, join(snapshot, 'data')]);
    await run('cp', ['-a', tablespaceDir, join(snapshot, 'tablespace')]);
    const snapshotMs = Date.now() - snapshotAt;

    const committedBeforeEnd = writer.lastCommitted;
    progress('end: pg_backup_stop, waiting for the stop segment to be archived');
    const ended = await end(ctx, { output: join(work, 'artifacts'), archiveTimeoutMs: 300_000 });
    const inBackupMs = Date.parse(ended.stoppedAt) - beginAt;
    out.progress(
      `        stopped at ${ended.stopLsn}; ${ended.artifacts.map((a) => a.name).join(', ')} written`,
    );

    await writer.stop();
    const restorePointRows = writer.lastCommitted;
    await source.query("SELECT pg_create_restore_point('pgsnap-demo')");
    progress(`named restore point "pgsnap-demo" after row ${restorePointRows}; more rows after it`);
    writer = startWriter(writerClient, ['demo_events'], 1, restorePointRows);
    await new Promise((r) => setTimeout(r, 500));
    await writer.stop();
    await writerClient.end();
    writerClient = undefined;
    for (const child of children) child.kill('SIGTERM');

    const client = await source.client();
    const [{ segment }] = (
      await client.query<{ segment: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS segment')
    ).rows as [{ segment: string }];
    await client.query('SELECT pg_switch_wal()');
    await waitForArchive(client, {
      files: [segment],
      timeoutMs: 120_000,
      versionNum: source.major * 10000,
      fromStandby: false,
      progress: out.progress,
    });
    const walArchived = (
      await client.query<{ n: string }>('SELECT archived_count AS n FROM pg_stat_archiver')
    ).rows[0]!.n;
    await client.end();
    source.stopSync('fast');

    const file = (name: string) => readFileSync(join(work, 'artifacts', name), 'utf8');
    const map = file('tablespace_map');
    const oid = map.split(' ')[0]!;
    const drill = async (
      name: string,
      target: RecoveryTarget,
      expectedRows: number,
    ): Promise<DrillResult> => {
      progress(`drill "${name}": restoring the snapshot and recovering from the archive`);
      const drillAt = Date.now();
      const root = ownedDir(join(work, `drill-${clusters.length}`));
      await run('cp', ['-a', join(snapshot, 'data'), join(root, 'data')]);
      await run('cp', ['-a', join(snapshot, 'tablespace'), join(root, 'tablespace')]);
      prepareDataDirectory({
        pgdata: join(root, 'data'),
        backupLabel: file('backup_label'),
        tablespaceMap: map,
        tablespaces: { [oid]: join(root, 'tablespace') },
        restoreCommand: `cp ${source.archiveDir}/%f %p`,
        target,
        targetAction: 'promote',
      });
      chownTree(root);
      const restored = await Cluster.create({
        major,
        root,
        dataDir: join(root, 'data'),
        archiveDir: source.archiveDir,
      });
      clusters.push(restored);
      await restored.waitForPromotion();
      const restoreMs = Date.now() - drillAt;
      const [row] = await restored.query<{ found: string; extra: string }>(
        'SELECT count(*) FILTER (WHERE id <= $1) AS found, count(*) FILTER (WHERE id > $1) AS extra FROM demo_events',
        [expectedRows],
      );
      const amcheckBin = clientBin('pg_amcheck');
      let amcheck: DrillResult['amcheck'] = 'not available';
      if (amcheckBin && major >= 14) {
        const result = asPostgres(
          amcheckBin,
          [
            '-h',
            restored.socketDir,
            '-p',
            String(restored.port),
            '-U',
            'postgres',
            '--install-missing',
            '--heapallindexed',
            '-d',
            'postgres',
          ],
          { allowFailure: true },
        );
        amcheck = result.status === 0 ? 'passed' : 'failed';
      }
      restored.stopSync('fast');
      const foundRows = Number(row!.found);
      const extraRows = Number(row!.extra);
      const exact = target.kind === 'name';
      const ok = foundRows === expectedRows && (!exact || extraRows === 0) && amcheck !== 'failed';
      out.progress(
        `        ${ok ? 'ok' : 'FAILED'}: ${foundRows} of ${expectedRows} rows${exact ? `, ${extraRows} after the target` : ''}, pg_amcheck ${amcheck}, ${formatDuration(restoreMs)}`,
      );
      return { name, restoreMs, expectedRows, foundRows, extraRows, amcheck, ok };
    };

    const drills = [
      await drill('end of backup (recovery_target = immediate)', { kind: 'immediate' }, committedBeforeEnd),
      await drill(
        'point in time (recovery_target_name = pgsnap-demo)',
        { kind: 'name', value: 'pgsnap-demo' },
        restorePointRows,
      ),
    ];
    const ok = drills.every((d) => d.ok);
    const report = {
      ok,
      backupId: ended.backupId,
      serverVersion: session.serverVersion,
      startLsn: ended.startLsn,
      stopLsn: ended.stopLsn,
      inBackupModeMs: inBackupMs,
      snapshotMs,
      walSegmentsArchived: Number(walArchived),
      drills,
      totalMs: Date.now() - started,
    };
    out.result(report, [
      '',
      'pgsnap demo report',
      `  backup            ${ended.backupId} (PostgreSQL ${session.serverVersion})`,
      `  LSNs              ${ended.startLsn} .. ${ended.stopLsn}`,
      `  in backup mode    ${formatDuration(inBackupMs)} (snapshot by copy: ${formatDuration(snapshotMs)})`,
      `  WAL archived      ${walArchived} files`,
      ...drills.map(
        (d) =>
          `  drill             ${d.name}: ${d.ok ? 'ok' : 'FAILED'}, ${d.foundRows}/${d.expectedRows} rows, amcheck ${d.amcheck}, restore ${formatDuration(d.restoreMs)}`,
      ),
      `  data check        ${ok ? 'PASSED' : 'FAILED'}`,
    ]);
    return ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
