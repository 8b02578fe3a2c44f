/** A schedule of the configuration: when backups start, and the check that judges a value as the agent does. */
import { z } from 'zod';
import { validateLabel } from '#domain/backup/input';

/** Turns one of the agent's validators into a zod check, so a value is judged the same on both sides. */
export function checkedBy(validate: (value: string) => string) {
  return z.string().superRefine((value, ctx) => {
    try {
      validate(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });
}

export const scheduleSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9-]{1,32}$/, 'lower-case letters, digits and -')
    .describe('Names the schedule; unique within the cluster.'),
  expression: z
    .string()
    .regex(/^(cron|rate)\(.+\)$/, 'cron(...) or rate(...)')
    .describe('EventBridge Scheduler expression: `cron(0 3 * * ? *)` or `rate(6 hours)`.'),
  timezone: z.string().default('UTC').describe('IANA time zone the expression is read in.'),
  label: checkedBy(validateLabel).default('scheduled').describe('Written into backup_label.'),
  flexibleWindowMinutes: z
    .number()
    .int()
    .min(1)
    .max(1440)
    .default(5)
    .describe(
      "Scheduler's flexible time window: each start falls at a random moment up to this many minutes after the scheduled time, so that a fleet's backups do not all start in the same second (1–1440).",
    ),
});

/** A cluster's RPO in hours, listed or found by tags (the fleet's ClustersOverRpo alarm); each says what it counts. */
export const rpoHoursSchema = z.int().min(1).max(168).default(26);
