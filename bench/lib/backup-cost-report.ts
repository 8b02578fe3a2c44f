/** bench/backup-vs-basebackup's tables: each size as it is measured, and the summary with the goals. */
import type { Detail } from './backups.ts';
import { median } from './stats.ts';
import { columns, pct, secs } from './table.ts';
import type { Measured } from './under-load.ts';

export type ModeKey =
  | 'pgsnap'
  | 'postgres-only'
  | 'control'
  | 'pgsnap-fast'
  | 'basebackup-spread'
  | 'basebackup-fast'
  | 'checkpoint';
export interface Mode {
  key: ModeKey;
  name: string;
  runs: number;
}

export interface SizeResult {
  gb: number;
  scale: number;
  dbBytes: number;
  /** The checkpoint settings as the server reported them while measuring. */
  server: string;
  runs: Record<ModeKey, Measured<Detail>[]>;
}

/** The two printers, over the modes measured and the report's `say`. */
export function backupCostPrinter({
  say,
  modes,
  controlRounds,
}: {
  say: (line?: string) => void;
  modes: Mode[];
  controlRounds: number;
}) {
  const share = (m: Measured<unknown>) => m.during.tps / m.base.tps;
  /** Transactions the load did not complete during the backup, against its baseline rate; unlike the share, it grows with the length of the backup. */
  const lost = (m: Measured<unknown>) => ((m.base.tps - m.during.tps) * m.wallMs) / 1000;

  const widths = [23, 7, 8, 7, 7, 7, 8, 7, 7, 7, 9, 7, 7, 7, 7];

  function printSize(r: SizeResult): void {
    say(
      `${r.gb} GB: database ${(r.dbBytes / 2 ** 30).toFixed(2)} GiB (pgbench scale ${r.scale}); ${r.server}`,
    );
    say(
      columns(widths, [
        'backup',
        'wall s',
        'TPS base',
        'during',
        'share',
        'lost tx',
        'lat base',
        'during',
        'p95',
        'WAL MB',
        'base ckpt',
        'ckpt s',
        'buffers',
        'in ckpt',
        'outside',
      ]),
    );
    const rows: Array<[string, Measured<Detail>]> = modes.flatMap((mode) =>
      r.runs[mode.key].map((m, i): [string, Measured<Detail>] => [
        mode.runs > 1 ? `${mode.name} ${i + 1}` : mode.name,
        m,
      ]),
    );
    for (const [name, m] of rows) {
      say(
        columns(widths, [
          name,
          (m.wallMs / 1000).toFixed(2),
          m.base.tps.toFixed(0),
          m.during.tps.toFixed(0),
          pct(share(m)),
          lost(m).toFixed(0),
          m.base.meanMs.toFixed(1),
          m.during.meanMs.toFixed(1),
          m.during.p95Ms.toFixed(1),
          (m.walBytes / 2 ** 20).toFixed(1),
          `${(m.baseInCheckpoint * 100).toFixed(0)}%/${m.baseCompleteCheckpoints.length}`,
          (m.checkpoints.reduce((sum, c) => sum + c.to - c.from, 0) / 1000).toFixed(2),
          String(m.checkpoints.reduce((sum, c) => sum + c.buffers, 0)),
          m.inCheckpoints.ms >= 1000 ? pct(m.inCheckpoints.tps / m.base.tps) : '-',
          m.outsideCheckpoints.ms >= 1000 ? pct(m.outsideCheckpoints.tps / m.base.tps) : '-',
        ]),
      );
    }
    for (const [name, m] of rows) {
      const notes: string[] = [];
      const p = m.detail.pgsnap;
      if (p) {
        notes.push(
          `pg_backup_start ${secs(p.startCallMs)}, in backup mode ${secs(p.heldMs - p.startCallMs)} ` +
            `(to pg_backup_stop, ${p.stopCallMs} ms), archive wait ${p.archiveWaitMs} ms`,
        );
      }
      if (m.detail.copiedBytes !== undefined) {
        notes.push(`copied ${(m.detail.copiedBytes / 2 ** 30).toFixed(2)} GiB`);
      }
      notes.push(
        m.startedIntoCheckpointMs === undefined
          ? 'started with no checkpoint running'
          : `started ${secs(m.startedIntoCheckpointMs)} into a running checkpoint`,
      );
      const during = m.checkpoints.map((c) =>
        c.running
          ? `${c.kind} (still running when the log was read; ${secs(c.to - c.from)} of it in the window)`
          : `${c.kind} ${secs(c.to - c.from)} (${c.buffers} buffers, sync ${secs(c.syncMs)})`,
      );
      notes.push(`checkpoints overlapping it: ${during.length ? during.join(', ') : 'none'}`);
      say(`  ${name}: ${notes.join('; ')}`);
      const tpsSteps = (x: { min: number; max: number }) => `${x.min.toFixed(0)}-${x.max.toFixed(0)}`;
      const stall = (x: { cpu: number; io: number } | undefined) =>
        x ? `cpu ${pct(x.cpu)}, io ${pct(x.io)}` : 'not available';
      say(
        `    noise: TPS in 5 s steps, baseline ${tpsSteps(m.baseSteps)}` +
          (m.duringSteps ? `, during ${tpsSteps(m.duringSteps)}` : '') +
          `; machine stalled (PSI some), baseline ${stall(m.baseStall)}, during ${stall(m.duringStall)}`,
      );
      say(
        `    per second (share of baseline TPS in tenths, + at or above it; | checkpoint starts, ! ends): ${m.profile}`,
      );
    }
    say();
  }

  /** The modes that take a backup; the CHECKPOINT reference, PostgreSQL alone and the control are not. */
  const backupModes = modes.filter((m) => !['checkpoint', 'control', 'postgres-only'].includes(m.key));

  function printSummary(results: SizeResult[]): void {
    say('Summary (median of the runs of each mode at each size)');
    const w = [23, 5, 7, 9, 7, 7, 9];
    say(columns(w, ['backup', 'size', 'wall s', 'TPS share', 'lost tx', 'WAL MB', 'base ckpt']));
    for (const mode of modes) {
      for (const r of results) {
        const runs = r.runs[mode.key];
        say(
          columns(w, [
            mode.name,
            `${r.gb} GB`,
            (median(runs.map((m) => m.wallMs)) / 1000).toFixed(2),
            pct(median(runs.map(share))),
            median(runs.map(lost)).toFixed(0),
            (median(runs.map((m) => m.walBytes)) / 2 ** 20).toFixed(1),
            `${(median(runs.map((m) => m.baseInCheckpoint)) * 100).toFixed(0)} %`,
          ]),
        );
      }
    }
    say();
    const all = results.flatMap((r) => modes.flatMap((mode) => r.runs[mode.key]));
    const withoutRegular = all.filter(
      (m) => !m.baseCompleteCheckpoints.some((c) => c.kind === 'time'),
    ).length;
    say(
      `baselines: ${all.length - withoutRegular} of ${all.length} held a whole regular (timed) checkpoint; ` +
        `inside checkpoints ${pct(Math.min(...all.map((m) => m.baseInCheckpoint)))} to ` +
        `${pct(Math.max(...all.map((m) => m.baseInCheckpoint)))} of the time`,
    );
    const first = results[0]!;
    const last = results.at(-1)!;
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    for (const mode of backupModes) {
      const name = mode.key === 'pgsnap' ? `${mode.name}, the goals` : `${mode.name} (for comparison)`;
      const runs = (r: SizeResult) => r.runs[mode.key];
      if (results.length > 1) {
        const growth = median(runs(last).map((m) => m.wallMs)) / median(runs(first).map((m) => m.wallMs));
        say(
          `${name}: backup time ${first.gb} GB -> ${last.gb} GB grows ${growth.toFixed(2)}x ` +
            `(goal <= 1.2x: ${verdict(growth <= 1.2)})`,
        );
      }
      const shares = results.map((r) => median(runs(r).map(share)));
      const lowest = Math.min(...shares);
      say(
        `${name}: TPS during backup ${shares.map(pct).join(' / ')} of baseline at ${results.map((r) => `${r.gb}`).join(' / ')} GB ` +
          `(goal >= 95 % at every size: ${verdict(lowest >= 0.95)})`,
      );
    }
    if (controlRounds) {
      for (const r of results) {
        say(
          `${r.gb} GB, TPS share of each round: ` +
            modes.map((m) => `${m.name} ${r.runs[m.key].map((x) => pct(share(x))).join(', ')}`).join('; '),
        );
      }
      // The control is the same window with nothing in it: what the load does there anyway (the phase of its
      // checkpoints, the machine's noise). A backup's share over the control's share of its round is what the
      // backup itself costs.
      for (const mode of modes.filter((m) => m.key !== 'control')) {
        const ratios = results.map((r) =>
          r.runs[mode.key].map((x, round) => share(x) / share(r.runs.control[round]!)),
        );
        say(
          `${mode.name}, TPS share over the control's share of the same round: ` +
            results
              .map(
                (r, i) => `${r.gb} GB ${ratios[i]!.map(pct).join(', ')} (median ${pct(median(ratios[i]!))})`,
              )
              .join('; '),
        );
      }
    }
  }

  return { printSize, printSummary };
}
