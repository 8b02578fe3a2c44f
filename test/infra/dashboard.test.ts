import { beforeAll, describe, expect, test } from 'vitest';
import { type SynthesizedStack, synthStack, testEnvironment } from '../support/backup-stack.ts';

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
    expect(widgets.slice(2, 4).map((w) => w.properties.title)).toEqual([
      'Backups per day, all clusters',
      'Backup executions: duration (all clusters)',
    ]);
    // The fleet's counts, without the Cluster dimension (the failure events name each cluster).
    expect(widgets[2]!.properties.metrics).toEqual([
      ['pgsnap', 'BackupCompleted', expect.objectContaining({ stat: 'Sum', period: 86400 })],
      ['pgsnap', 'BackupFailed', expect.objectContaining({ stat: 'Sum', period: 86400 })],
    ]);
  });

  test('the same widgets for 2 clusters or 12: the clusters to look at first, by Metrics Insights queries', () => {
    const { widgets } = dashboardBody();
    const titles = widgets.map((w) => String(w.properties.title ?? ''));
    // No widget names a cluster: the dashboard does not grow with the fleet.
    for (const cluster of ['orders-db', 'billing-db']) {
      expect(titles.filter((t) => t.includes(cluster))).toEqual([]);
    }
    const many = synthStack({
      ...testEnvironment,
      clusters: Array.from({ length: 12 }, (_, i) => ({
        name: `db-${i}`,
        instance: { tags: { 'pgsnap:cluster': `db-${i}` } },
      })),
    });
    const [dashboard] = Object.values(many.template.findResources('AWS::CloudWatch::Dashboard'));
    const body = dashboard!.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] };
    const manyWidgets = JSON.parse(
      body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '?')).join(''),
    ).widgets as Array<{ properties: { title?: string } }>;
    expect(manyWidgets.slice(2).map((w) => w.properties.title)).toEqual(
      widgets.slice(2).map((w) => w.properties.title),
    );
    const lag = widgets.find((w) => w.properties.title === 'WAL archive lag, seconds: the longest')!;
    expect(lag.properties.metrics).toEqual([
      [
        {
          expression:
            'SELECT MAX(ArchiveLagSeconds) FROM SCHEMA("pgsnap/hosts", Cluster) GROUP BY Cluster ORDER BY MAX() DESC LIMIT 10',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudWatch's dynamic label (each line its cluster)
          label: '${LABEL}',
        },
      ],
    ]);
    const free = widgets.find((w) => w.properties.title === 'pg_wal free bytes: the least')!;
    expect(JSON.stringify(free.properties.metrics)).toContain('ORDER BY MIN() ASC LIMIT 10');
  });

  test('shows only metrics something emits: the state machines (the restore one notes each RTO), record-backup, report-backup-age, Step Functions, the agent', () => {
    const { widgets } = dashboardBody();
    const metrics = widgets.flatMap((w) => (w.properties.metrics as unknown[][] | undefined) ?? []);
    const names = new Set([
      ...metrics.filter((m) => typeof m[0] === 'string').map((m) => `${m[0]} ${m[1]}`),
      // A Metrics Insights query names its metric and namespace: SELECT FN(Metric) FROM SCHEMA("namespace", …).
      ...metrics
        .map((m) => (m[0] as { expression?: string }).expression ?? '')
        .flatMap((e) => {
          const match = /^SELECT \w+\((\w+)\) FROM SCHEMA\("([^"]+)"/.exec(e);
          return match ? [`${match[2]} ${match[1]}`] : [];
        }),
    ]);
    expect([...names].sort()).toEqual([
      'AWS/States ExecutionTime',
      'pgsnap BackupCompleted',
      'pgsnap BackupFailed',
      'pgsnap BackupModeSeconds',
      'pgsnap BackupSeconds',
      'pgsnap ClustersOverRpo',
      'pgsnap ClustersWithoutArchiveHealth',
      'pgsnap ClustersWithoutBackup',
      'pgsnap ClustersWithoutRecentDrill',
      'pgsnap DrillFailed',
      'pgsnap DrillRtoSeconds',
      'pgsnap RestoreFailed',
      'pgsnap SnapshotSeconds',
      'pgsnap/hosts ArchiveFailures',
      'pgsnap/hosts ArchiveLagSeconds',
      'pgsnap/hosts PusherBacklog',
      'pgsnap/hosts ReadyFiles',
      'pgsnap/hosts WalVolumeFreeBytes',
    ]);
    // Each cluster's ages are report-backup-age's log lines, not a metric per cluster: Logs Insights tables.
    const ages = widgets.filter((w) => w.type === 'log');
    expect(ages.map((w) => w.properties.title)).toEqual([
      'Newest completed backup, seconds ago: the oldest',
      'Days since the last drill: the longest',
    ]);
    expect(String(ages[0]!.properties.query)).toContain(
      'filter message = "freshness" | stats latest(backupAgeSeconds) as newest by cluster | sort newest desc | limit 10',
    );
    // The fleet-wide durations carry no cluster dimension (record-backup publishes them so).
    const durations = metrics.filter((m) => m[1] === 'BackupModeSeconds');
    expect(durations.length).toBeGreaterThan(0);
    for (const m of durations) expect(m).not.toContain('Cluster');
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
