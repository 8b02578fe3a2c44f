/** Lambda for "Check whether the instance is running": one poll, bounded by the time since it was asked for. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { sdkRetry } from '#domain/aws-retry';
import { InstanceNotFoundError, TimeoutError } from '#domain/errors';
import { parseWith } from '#domain/parse';
import { instanceState } from '#domain/restore/instance';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  PGSNAP_INSTANCE_SECONDS: z._default(z.pipe(z.coerce.number(), z.int().check(z.gte(1))), 900),
});

const eventSchema = z.object({ instanceId: z.string(), since: z.iso.datetime() });

export const checkRestoreInstanceHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<{ running: boolean; state: string }> => {
    const env = parseWith(environmentSchema, process.env, 'the check-restore-instance environment');
    const request = parseWith(eventSchema, event, 'the check-restore-instance event');
    const state = await instanceState(ec2, request.instanceId);
    // 'not visible yet' (NotFound, right after RunInstances) is waited for as 'pending' is, within the same bound.
    if (['shutting-down', 'terminated', 'stopping', 'stopped'].includes(state)) {
      throw new InstanceNotFoundError(
        `the restore's instance ${request.instanceId} is ${state}; it must be running to take the volumes`,
      );
    }
    const running = state === 'running';
    if (!running && Date.now() - Date.parse(request.since) > env.PGSNAP_INSTANCE_SECONDS * 1000) {
      if (state === 'not visible yet') {
        throw new InstanceNotFoundError(
          `instance ${request.instanceId} does not exist: EC2 has not shown it in ${env.PGSNAP_INSTANCE_SECONDS} s since it was launched or chosen`,
        );
      }
      throw new TimeoutError(
        `instance ${request.instanceId} is still ${state} after ${env.PGSNAP_INSTANCE_SECONDS} s; ` +
          'check its launch template (AMI, instance type, subnet capacity)',
      );
    }
    return { running, state };
  };

export const handler = logged('check-restore-instance', checkRestoreInstanceHandler(new EC2Client(sdkRetry)));
