import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../infra/config/config.ts';

const cluster = { name: 'orders-db', instance: { instanceId: 'i-0123456789abcdef0' } };

describe('the deployment configuration', () => {
  test('the shipped example is valid and gets its defaults', () => {
    const config = parseConfig(JSON.parse(readFileSync('pgsnap.config.json', 'utf8')));
    expect(config.environments[0]!.timeouts).toEqual({
      hostCommandSeconds: 1800,
      heartbeatSeconds: 300,
      firstPollSeconds: 30,
      maxPollSeconds: 1800,
      snapshotHours: 24,
    });
  });

  test.each([
    [{ ...cluster, name: 'Orders DB' }, 'environments.0.clusters.0.name'],
    [{ ...cluster, instance: { instanceId: 'orders' } }, 'environments.0.clusters.0.instance'],
    [{ ...cluster, volumeIds: ['/dev/sdf'] }, 'environments.0.clusters.0.volumeIds.0'],
    [{ ...cluster, schedules: [{ name: 'n', expression: '0 3 * * *' }] }, 'schedules.0.expression'],
    [
      { ...cluster, schedules: [{ name: 'n', expression: 'rate(1 day)', label: 'a"b' }] },
      'schedules.0.label',
    ],
    [{ ...cluster, rpoHours: 200 }, 'rpoHours'],
    [{ ...cluster, retention: { days: 7 } }, 'retention'],
  ])('refuses %j, naming %s', (bad, field) => {
    expect(() => parseConfig({ environments: [{ name: 'prod', clusters: [bad] }] })).toThrow(field);
  });

  test('refuses a cluster named twice', () => {
    expect(() => parseConfig({ environments: [{ name: 'prod', clusters: [cluster, cluster] }] })).toThrow(
      'cluster orders-db appears twice in prod',
    );
  });

  test('refuses a heartbeatSeconds too short for the first heartbeat to arrive, and says why', () => {
    expect(() =>
      parseConfig({
        environments: [{ name: 'prod', clusters: [cluster], timeouts: { heartbeatSeconds: 30 } }],
      }),
    ).toThrow(
      /timeouts\.heartbeatSeconds: at least 60: .*SSM has delivered it to the host and pgsnap has started/,
    );
  });
});
