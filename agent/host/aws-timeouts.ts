/**
 * The agent's limits on every AWS call (S3 repository, Step Functions,
 * CloudWatch, EC2, STS): PGSNAP_AWS_CONNECT_TIMEOUT and
 * PGSNAP_AWS_REQUEST_TIMEOUT, in seconds (decimals allowed), defaults 5 and 30.
 * archive_command and restore_command run without the operator's environment:
 * there the defaults apply unless the variables are set in PostgreSQL's own.
 */

import { sdkRetry } from '#domain/aws-retry';
import {
  type AwsTimeouts,
  awsClientTimeouts,
  awsMaxAttempts,
  defaultAwsTimeouts,
} from '#domain/aws-timeouts';
import { secondsFromEnvironment } from './settings.ts';

/** The limits this process uses, from the environment. */
export function awsTimeouts(env: NodeJS.ProcessEnv = process.env): AwsTimeouts {
  return {
    connectMs: secondsFromEnvironment('awsConnectTimeout', env) ?? defaultAwsTimeouts.connectMs,
    requestMs: secondsFromEnvironment('awsRequestTimeout', env) ?? defaultAwsTimeouts.requestMs,
  };
}

/** What every AWS client the agent creates is given: the time limits and the attempts. */
export function awsClientConfig(env: NodeJS.ProcessEnv = process.env) {
  return {
    retryMode: sdkRetry.retryMode,
    maxAttempts: awsMaxAttempts,
    ...awsClientTimeouts(awsTimeouts(env)),
  };
}
