/**
 * Lambda behind the stack's cluster catalog (infra/config/cluster-catalog.ts), a CloudFormation custom
 * resource: on create and update it writes the catalog object the stack passes, under a key named after
 * its content, and on delete (the old key, once an update made a new one, or the stack's end) it removes
 * it. It answers CloudFormation itself at the request's pre-signed URL (custom resource request and
 * response objects, CloudFormation User Guide), so no provider framework Lambda is needed. The body comes
 * gzipped in base64, each deploy-time value (a bucket name) as a marker `Substitutions` resolves
 * (infra/config/cluster-catalog.ts): an update's request carries the old properties too, and Lambda holds an
 * asynchronous invocation's payload to 1 MB.
 */
import { gunzipSync } from 'node:zlib';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { sdkRetry } from '#domain/aws-retry';
import { catalogSchema } from '#domain/catalog';
import { jsonText, parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logged } from './commons/logged.ts';

const eventSchema = z.object({
  RequestType: z.enum(['Create', 'Update', 'Delete']),
  ResponseURL: z.string().check(z.startsWith('https://')),
  StackId: z.string(),
  RequestId: z.string(),
  LogicalResourceId: z.string(),
  PhysicalResourceId: z.optional(z.string()),
  ResourceProperties: z.object({
    Bucket: z.string(),
    Key: z.string(),
    /** The catalog's JSON, gzipped, in base64. */
    Body: z.string(),
    /** Each marker in the body and the deploy-time value it stands for. */
    Substitutions: z._default(z.record(z.string(), z.string()), {}),
  }),
});
type CatalogEvent = z.output<typeof eventSchema>;

/** The S3 answers that mean the object is already gone. */
const gone = new Set(['NoSuchBucket', 'NoSuchKey']);

async function apply(s3: S3Client, event: CatalogEvent): Promise<string> {
  const { Bucket, Key } = event.ResourceProperties;
  const url = `s3://${Bucket}/${Key}`;
  if (event.RequestType === 'Delete') {
    // A create that failed has no object (its physical id is the request id); nothing else is ours to remove.
    if (event.PhysicalResourceId !== url) return event.PhysicalResourceId ?? url;
    try {
      await s3.send(new DeleteObjectCommand({ Bucket, Key }));
    } catch (error) {
      if (!gone.has((error as Error).name)) throw error;
    }
    return url;
  }
  const Body = catalogText(event.ResourceProperties);
  parseWith(jsonText(catalogSchema), Body, `the cluster catalog for ${url}`);
  await s3.send(new PutObjectCommand({ Bucket, Key, Body, ContentType: 'application/json' }));
  return url;
}

/** The catalog's JSON: the body unzipped, each marker replaced by its value. */
function catalogText(properties: CatalogEvent['ResourceProperties']): string {
  let text = gunzipSync(Buffer.from(properties.Body, 'base64')).toString('utf8');
  for (const [marker, value] of Object.entries(properties.Substitutions))
    text = text.replaceAll(marker, value);
  return text;
}

async function answer(event: CatalogEvent, status: 'SUCCESS' | 'FAILED', physicalId: string, reason = '') {
  const body = JSON.stringify({
    Status: status,
    Reason: reason.slice(0, 3_000),
    PhysicalResourceId: physicalId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  });
  const response = await fetch(event.ResponseURL, {
    method: 'PUT',
    body,
    headers: { 'content-type': '', 'content-length': String(Buffer.byteLength(body)) },
  });
  if (!response.ok) throw new Error(`CloudFormation refused the answer: HTTP ${response.status}`);
}

/** The handler with its S3 client given. */
export const writeCatalogHandler =
  (s3: S3Client) =>
  async (input: unknown): Promise<{ status: 'SUCCESS' | 'FAILED'; physicalId: string }> => {
    const event = parseWith(eventSchema, input, 'the write-catalog event');
    let physicalId = event.PhysicalResourceId ?? event.RequestId;
    try {
      physicalId = await apply(s3, event);
    } catch (error) {
      // CloudFormation waits an hour for an answer that never comes: a failure is answered too, then rethrown.
      await answer(event, 'FAILED', physicalId, (error as Error).message);
      throw error;
    }
    await answer(event, 'SUCCESS', physicalId);
    return { status: 'SUCCESS', physicalId };
  };

export const handler = logged('write-catalog', writeCatalogHandler(new S3Client(sdkRetry)));
