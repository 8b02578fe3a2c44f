/**
 * Lambda behind a function URL (AWS_IAM auth) that a host found by tags calls for its cluster's credentials
 * (domain/host-credentials.ts). The credentials are never logged: one line says whom it served, or why not.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { STSClient } from '@aws-sdk/client-sts';
import { sdkRetry } from '#domain/aws-retry';
import { readCatalog } from '#domain/catalog';
import { CredentialsRefusedError, vendCredentials } from '#domain/host-credentials';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';
import { logger } from './commons/logged.ts';

const environmentSchema = z.object({
  PGSNAP_DISCOVERED_HOST_ROLE: z.string().check(z.minLength(1)),
  PGSNAP_DISCOVERED_CLUSTER_ROLE_ARN: z.string().check(z.startsWith('arn:')),
});

/** The function URL's event (payload format 2.0), only what is read. */
const eventSchema = z.object({
  requestContext: z.object({
    authorizer: z.optional(z.object({ iam: z.optional(z.object({ userArn: z.optional(z.string()) })) })),
  }),
});

export interface UrlResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const json = (statusCode: number, body: unknown): UrlResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  body: JSON.stringify(body),
});

/** The handler with its clients given. */
export const vendCredentialsHandler =
  (clients: { ec2: EC2Client; sts: STSClient }) =>
  async (event: unknown): Promise<UrlResponse> => {
    const environment = parseWith(environmentSchema, process.env, 'the vend-credentials environment');
    const { requestContext } = parseWith(eventSchema, event, 'the function URL request');
    const callerArn = requestContext.authorizer?.iam?.userArn;
    try {
      const vended = await vendCredentials(clients, {
        callerArn,
        hostRoleName: environment.PGSNAP_DISCOVERED_HOST_ROLE,
        clusterRoleArn: environment.PGSNAP_DISCOVERED_CLUSTER_ROLE_ARN,
        catalog: await readCatalog(),
      });
      logger.info('vend-credentials done', {
        cluster: vended.cluster,
        instanceId: vended.instanceId,
        expiration: vended.Expiration,
      });
      return json(200, {
        Version: 1,
        AccessKeyId: vended.AccessKeyId,
        SecretAccessKey: vended.SecretAccessKey,
        Token: vended.Token,
        Expiration: vended.Expiration,
        cluster: vended.cluster,
      });
    } catch (error) {
      if (error instanceof CredentialsRefusedError) {
        logger.warn('vend-credentials refused', { callerArn, reason: error.message });
        return json(403, { error: error.name, message: error.message });
      }
      logger.error('vend-credentials failed', error as Error);
      throw error;
    }
  };

export const handler = vendCredentialsHandler({
  ec2: new EC2Client(sdkRetry),
  sts: new STSClient(sdkRetry),
});
