/**
 * Lambda that a retention schedule invokes (one per side and cadence,
 * infra/retention/scheduled-retention.ts): apply-retention once per cluster
 * retained on that cadence in the stack's catalog, each an asynchronous
 * invocation, so that a fleet's retention is one schedule and 500 short runs
 * in parallel rather than 500 schedules.
 *
 * What that relies on (AWS Lambda Developer Guide, "Invoking a Lambda function
 * asynchronously" and AWS::Lambda::EventInvokeConfig): with InvocationType
 * `Event`, "Lambda places the event in a queue and returns a success response"
 * (202) at once; "by default, Lambda retries an asynchronous invocation twice
 * if the function returns an error. It retains events in a queue for up to six
 * hours", and retries throttled invocations for as long. An event may also be
 * delivered more than once: a retention run twice deletes nothing twice. An
 * asynchronous payload is limited to 256 KB (Lambda quotas); ours is a cluster
 * name and a repository URL. A failed run counts in apply-retention's Errors,
 * which the retention alarm watches.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { sdkRetry } from '#domain/aws-retry';
import { type RetentionStart, startRetention } from '#domain/backup/scheduled-retention';
import { readCatalog } from '#domain/catalog';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const environmentSchema = z.object({
  /** The apply-retention function of the same side. */
  PGSNAP_APPLY_RETENTION_FUNCTION: z.string().check(z.minLength(1)),
});

/** The handler with its Lambda client given. */
export const startRetentionHandler =
  (lambda: LambdaClient) =>
  async (event: unknown): Promise<RetentionStart> => {
    const { PGSNAP_APPLY_RETENTION_FUNCTION: functionName } = parseWith(
      environmentSchema,
      process.env,
      'the start-retention environment',
    );
    return startRetention({
      catalog: () => readCatalog(),
      event,
      invoke: async (retained) => {
        await lambda.send(
          new InvokeCommand({
            FunctionName: functionName,
            InvocationType: 'Event',
            Payload: Buffer.from(JSON.stringify(retained)),
          }),
        );
      },
    });
  };

export const handler = logged('start-retention', startRetentionHandler(new LambdaClient(sdkRetry)));
