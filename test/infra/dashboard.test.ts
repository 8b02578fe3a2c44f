import { beforeAll, describe, expect, test } from 'vitest';
import { type SynthesizedStack, synthStack } from '../support/backup-stack.ts';

let synthesized: SynthesizedStack;
beforeAll(() => {
  synthesized = synthStack();
});

/** The dashboard's body: DashboardBody is a Fn::Join of strings and references; references read as "?". */
function dashboardBody(): {
  widgets: Array<{ type: string; properties: Record<string, unknown> }>;
} {
  const [dashboard] = Object.values(synthesized.template.findResources('AWS::CloudWatch::Dashboard'));
  const body = dashboard!.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
  const text = body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '?')).join('');
  return JSON.parse(text);
}

describe('the dashboard', () => {
  test('the fleet on top: every alarm, backups completed and failed, execution times', () => {
    const { widgets } = dashboardBody();
    expect(widgets[0]!.type).toBe('text');
    const status = widgets[1]!;
    expect(status.type).toBe('alarm');
    const alarmCount = Object.keys(synthesized.template.findResources('AWS::CloudWatch::Alarm')).length;
    expect((status.properties.alarms as unknown[]).length).toBe(alarmCount);
    expect(widgets.slice(2, 5).map((w) => w.properties.title)).toEqual([
      'Backups completed, last 24 hours',
      'Backups failed, last 24 hours',
      'Backup executions: duration (all clusters)',
    ]);
  });

  test('per cluster: backups against the RPO, archive lag against walRpoMinutes, ready files, pg_wal free space', () => {
    const { widgets } = dashboardBody();
    for (const cluster of ['orders-db', 'billing-db']) {
      const titles = widgets.map((w) => String(w.properties.title ?? w.properties.markdown ?? ''));
      expect(titles.filter((t) => t.startsWith(`${cluster}:`))).toEqual([
        `${cluster}: newest completed backup, hours ago`,
        `${cluster}: backups per hour (RPO 26 h without one)`,
        `${cluster}: durations of completed backups`,
        `${cluster}: WAL archive lag`,
        `${cluster}: WAL files waiting`,
        `${cluster}: pg_wal free space`,
        `${cluster}: restores and drills per day`,
        `${cluster}: RTO (request to accepting connections)`,
      ]);
      const lag = widgets.find((w) => w.properties.title === `${cluster}: WAL archive lag`)!;
      expect(JSON.stringify(lag.properties.metrics)).toContain(
        '"pgsnap/hosts","ArchiveLagSeconds","Cluster",',
      );
      expect(lag.properties.annotations).toEqual({
        horizontal: [{ value: 900, label: 'archiving stalled', yAxis: 'left' }],
      });
    }
  });

  test('shows only metrics something emits: the state machines (the restore one notes each RTO), record-backup, report-backup-age, Step Functions, the agent', () => {
    const { widgets } = dashboardBody();
    const names = new Set(
      widgets.flatMap((w) =>
        ((w.properties.metrics as unknown[][] | undefined) ?? [])
          // A metric math expression is [{expression, …}]; the metrics it uses are listed too.
          .filter((m) => typeof m[0] === 'string')
          .map((m) => `${m[0]} ${m[1]}`),
      ),
    );
    expect([...names].sort()).toEqual([
      'AWS/States ExecutionTime',
      'pgsnap BackupCompleted',
      'pgsnap BackupFailed',
      'pgsnap BackupModeSeconds',
      'pgsnap BackupSeconds',
      'pgsnap DrillFailed',
      'pgsnap DrillRtoSeconds',
      'pgsnap DrillSucceeded',
      'pgsnap NewestBackupAgeSeconds',
      'pgsnap RestoreFailed',
      'pgsnap RestoreRtoSeconds',
      'pgsnap RestoreSucceeded',
      'pgsnap SnapshotSeconds',
      'pgsnap/hosts ArchiveFailures',
      'pgsnap/hosts ArchiveLagSeconds',
      'pgsnap/hosts PusherBacklog',
      'pgsnap/hosts ReadyFiles',
      'pgsnap/hosts WalVolumeFreeBytes',
    ]);
  });
});

describe('the saved Logs Insights query', () => {
  test('"everything about backup X" searches every Lambda’s log group by backupId, oldest line first', () => {
    const [query] = Object.values(synthesized.template.findResources('AWS::Logs::QueryDefinition'));
    expect(query!.Properties.Name).toBe('pgsnap-test/everything about backup BACKUP-ID');
    expect(query!.Properties.QueryString).toContain('| filter backupId = "BACKUP-ID"');
    expect(query!.Properties.QueryString).toContain('| sort @timestamp asc');
    expect(query!.Properties.QueryString).toContain('error.name');
    const functions = Object.keys(synthesized.template.findResources('AWS::Lambda::Function')).length;
    expect(query!.Properties.LogGroupNames).toHaveLength(functions);
  });
});
