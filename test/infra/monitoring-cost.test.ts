/**
 * What monitoring adds per cluster does not grow past what a per-cluster
 * threshold needs: synthesized for 3 and for 30 clusters, the fleet's alarms
 * (over report-backup-age's counts, the failed executions, the copy lag) are
 * the same, and each further cluster adds exactly its two archive alarms, on
 * the host's two metrics with a Cluster dimension.
 */
import { describe, expect, test } from 'vitest';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { synthStack, testEnvironment } from '../support/backup-stack.ts';

type Alarm = { Namespace?: string; MetricName?: string; Dimensions?: Array<{ Name: string; Value: string }> };

function alarmsOf(clusters: number): Alarm[] {
  const environment: EnvironmentInput = {
    ...testEnvironment,
    clusters: Array.from({ length: clusters }, (_, i) => ({
      name: `db-${String(i).padStart(3, '0')}`,
      instance: { instanceId: `i-${i.toString(16).padStart(17, '0')}` },
      repository: { prefix: 'pgsnap/' },
      schedules: [{ name: 'hourly', expression: 'rate(1 hour)' }],
    })),
  };
  const { template } = synthStack(environment);
  return Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties as Alarm);
}

describe('monitoring for 3 clusters and for 30', () => {
  const few = alarmsOf(3);
  const many = alarmsOf(30);
  const fleet = (alarms: Alarm[]) =>
    alarms
      .filter((a) => !a.Dimensions?.some((d) => d.Name === 'Cluster'))
      .map((a) => `${a.Namespace} ${a.MetricName}`)
      .sort();
  const perCluster = (alarms: Alarm[]) =>
    alarms.filter((a) => a.Dimensions?.some((d) => d.Name === 'Cluster'));

  test('the fleet alarms are the same, one per count, whatever the fleet', () => {
    expect(fleet(many)).toEqual(fleet(few));
    expect(fleet(few)).toEqual(
      expect.arrayContaining([
        'pgsnap ClustersOverRpo',
        'pgsnap ClustersWithoutArchiveHealth',
        'pgsnap ClustersWithoutBackup',
      ]),
    );
  });

  test('each further cluster adds two alarms, on the two host metrics its thresholds need', () => {
    expect(many.length - few.length).toBe(2 * 27);
    const metrics = new Set(perCluster(many).map((a) => `${a.Namespace} ${a.MetricName}`));
    expect([...metrics].sort()).toEqual([
      'pgsnap/hosts ArchiveLagSeconds',
      'pgsnap/hosts WalVolumeFreeBytes',
    ]);
    const clusters = new Set(
      perCluster(many).map((a) => a.Dimensions!.find((d) => d.Name === 'Cluster')!.Value),
    );
    expect(clusters.size).toBe(30);
  });
});
