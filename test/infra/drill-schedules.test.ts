/**
 * A fleet's scheduled drills are spread over the week by cluster, each with a
 * flexible window, and started through the start-drill Lambda, which names the
 * execution after the cluster and the time the drill was due.
 */
import { Match } from 'aws-cdk-lib/assertions';
import { describe, expect, test } from 'vitest';
import { drillExpression, drillSlot } from '../../infra/restore/drill-schedule.ts';
import { synthStack, testEnvironment } from '../support/backup-stack.ts';

const drills = (schedule: string) => ({
  schedule,
  launch: { launchTemplate: 'pgsnap-drill', subnetId: 'subnet-0123456789abcdef0' },
});

describe('scheduled drills of a fleet', () => {
  // As many as one stack's cluster catalog holds today (the Lambda environment's 4 KB).
  const names = Array.from({ length: 12 }, (_, i) => `db-${String(i).padStart(2, '0')}`);
  const { template } = synthStack({
    ...testEnvironment,
    clusters: [
      ...names.map((name) => ({
        name,
        instance: { tags: { 'pgsnap:cluster': name } },
        drills: drills('rate(7 days)'),
      })),
      { ...testEnvironment.clusters[0]!, drills: drills('cron(0 6 ? * SUN *)') },
    ],
  });
  const schedules = Object.values(template.findResources('AWS::Scheduler::Schedule'))
    .map((s) => s.Properties)
    .filter((p) => String(p.Description).startsWith('pgsnap restore drill of '));
  const of = (cluster: string) =>
    schedules.find((p) => p.Description === `pgsnap restore drill of ${cluster}`);

  test('weekly drills fall on a day and hour chosen by the cluster’s name, spread over the week', () => {
    expect(schedules).toHaveLength(13);
    const expressions = names.map((name) => of(name)!.ScheduleExpression as string);
    for (const [i, expression] of expressions.entries()) {
      const { day, hour, minute } = drillSlot(names[i]!);
      expect(expression).toBe(`cron(${minute} ${hour} ? * ${day} *)`);
    }
    // The same at every synth, and an operator's cron is kept as given.
    expect(drillExpression('db-07', 'rate(7 days)')).toBe(expressions[7]);
    expect(of('orders-db')!.ScheduleExpression).toBe('cron(0 6 ? * SUN *)');
  });

  test('500 clusters spread over every day and nearly every hour of the week, none crowding one hour', () => {
    const fleet = Array.from({ length: 500 }, (_, i) => `cluster-${i}`);
    const slots = new Map<string, number>();
    const perDay = new Map<string, number>();
    for (const name of fleet) {
      const [, , hour, day] = /^cron\((\d+) (\d+) \? \* (\w+) \*\)$/.exec(
        drillExpression(name, 'rate(7 days)'),
      )!;
      slots.set(`${day} ${hour}`, (slots.get(`${day} ${hour}`) ?? 0) + 1);
      perDay.set(day!, (perDay.get(day!) ?? 0) + 1);
    }
    // 500 over 168 hours is about 3 an hour; a uniform spread keeps every hour in single digits.
    expect(slots.size).toBeGreaterThan(150);
    expect(Math.max(...slots.values())).toBeLessThanOrEqual(9);
    expect(perDay.size).toBe(7);
    for (const count of perDay.values()) expect(count).toBeGreaterThan(50);
  });

  test('each drill has a flexible window and starts through start-drill with its due time', () => {
    for (const schedule of schedules) {
      expect(schedule.FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 1440 });
      expect(JSON.stringify(schedule.Target.Arn)).toMatch(/StartDrill/);
      expect(JSON.parse(schedule.Target.Input)).toMatchObject({
        scheduledTime: '<aws.scheduler.scheduled-time>',
        backupId: 'latest',
        mode: 'drill',
      });
    }
    const [startDrill] = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: { Description: Match.stringLikeRegexp('starts a scheduled drill') },
      }),
    );
    expect(
      JSON.stringify(startDrill!.Properties.Environment.Variables.PGSNAP_RESTORE_STATE_MACHINE_ARN),
    ).toMatch(/RestoreStateMachine/);
  });
});
