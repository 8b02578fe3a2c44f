import { describe, expect, test } from 'vitest';
import { environmentSchema } from '../../infra/config/config.ts';
import { everyHours, projectSnapshots, SnapshotQuota } from '../../infra/guards/snapshot-quota.ts';

/** A fleet of `n` clusters of two volumes, backed up hourly, with `retention`. */
function fleet(n: number, retention: Record<string, unknown> | undefined) {
  return environmentSchema.parse({
    name: 'prod',
    region: 'eu-west-1',
    dr: { region: 'eu-central-1' },
    clusters: Array.from({ length: n }, (_, i) => ({
      name: `db-${i}`,
      instance: { instanceId: 'i-0123456789abcdef0' },
      volumeIds: ['vol-0123456789abcdef0', 'vol-0123456789abcdef1'],
      schedules: [{ name: 'hourly', expression: 'cron(0 * * * ? *)' }],
      ...(retention ? { retention } : {}),
    })),
  });
}

describe('the snapshot-per-Region projection', () => {
  test('hours between backups are read from rate() and cron() expressions', () => {
    expect(everyHours('rate(1 hour)')).toBe(1);
    expect(everyHours('rate(30 minutes)')).toBe(0.5);
    expect(everyHours('rate(2 days)')).toBe(48);
    expect(everyHours('cron(0 * * * ? *)')).toBe(1);
    expect(everyHours('cron(0 */6 * * ? *)')).toBe(6);
    expect(everyHours('cron(0 3 * * ? *)')).toBe(24);
    expect(everyHours('cron(0 3,15 * * ? *)')).toBe(12);
    expect(everyHours('cron(*/15 * * * ? *)')).toBe(0.25);
  });

  test('500 hourly clusters kept 7 days break the 100,000 quota in both Regions, and cdk synth says so', () => {
    const config = fleet(500, { keepDays: 7 });
    const projection = projectSnapshots(config);
    expect(projection.map((p) => [p.region, p.snapshots > 100_000])).toEqual([
      ['eu-west-1', true],
      ['eu-central-1', true],
    ]);
    const violations = new SnapshotQuota(config).validate();
    expect(violations).toHaveLength(2);
    expect(violations[0]).toMatch(/keeps up to \d+ snapshots in eu-west-1; EBS allows 100000 per Region/);
  });

  test('the same fleet thinned (24 hourly, 7 daily, 4 weekly, 12 monthly) fits, a DR policy of its own counted in DR', () => {
    const config = fleet(500, {
      thin: { hours: 24, days: 7, weeks: 4, months: 12 },
      dr: { keepDays: 30 },
    });
    const [source, dr] = projectSnapshots(config);
    expect(source!.snapshots).toBeLessThan(100_000);
    // DR keeps 30 days of hourly copies: far over.
    expect(dr!.snapshots).toBeGreaterThan(100_000);
    expect(new SnapshotQuota(config).validate()).toEqual([expect.stringMatching(/in eu-central-1/)]);
  });

  test('clusters without retention are named, not counted', () => {
    const [source] = projectSnapshots(fleet(3, undefined));
    expect(source).toMatchObject({ snapshots: 0, unbounded: ['db-0', 'db-1', 'db-2'] });
  });
});
