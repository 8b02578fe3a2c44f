/**
 * The instance role: its credentials are there, and it may do what the agent
 * does, asked in ways that change nothing: a heartbeat with a made-up task
 * token (Step Functions says InvalidToken to a caller who may send it,
 * AccessDenied to one who may not), one archive-health sample published as the
 * agent service would, and EC2's DryRun to check that the host may NOT delete
 * snapshots (a host that is broken into should not be able to destroy its
 * backups; infra/guards/agent-host-policy.ts grants no EC2 action).
 */

import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import { type CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteSnapshotCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { SendTaskHeartbeatCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { GetCallerIdentityCommand, type STSClient } from '@aws-sdk/client-sts';
import { messageOf } from '#domain/errors';
import { hostMetrics } from '#domain/host-metrics';
import { awsClientConfig } from '../host/aws-timeouts.ts';
import { type CheckResult, errorName, fail, ok, warn } from './check.ts';

export interface AwsClients {
  sts: STSClient;
  sfn: SFNClient;
  cloudwatch: CloudWatchClient;
  ec2: EC2Client;
}

const accessDenied = /AccessDenied|UnauthorizedOperation|NotAuthorized|Forbidden/i;

export async function awsChecks(
  clients: AwsClients,
  policyName: string,
  sample: MetricDatum[] | undefined,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  try {
    const identity = await clients.sts.send(new GetCallerIdentityCommand({}));
    results.push(ok('aws.credentials', `AWS credentials of ${identity.Arn}`));
  } catch (error) {
    return [
      fail(
        'aws.credentials',
        `no usable AWS credentials (${messageOf(error)}): attach an instance profile whose role has ${policyName}, ` +
          'and set AWS_REGION; or, on a host that is not on AWS (local snapshot providers, a file:// repository), ' +
          'run pgsnap doctor --local, which leaves out the AWS, SSM and EBS checks',
      ),
    ];
  }

  try {
    await clients.sfn.send(new SendTaskHeartbeatCommand({ taskToken: 'pgsnap-doctor-probe' }));
    results.push(ok('aws.states', 'the instance role may answer the backup state machine'));
  } catch (error) {
    const name = errorName(error);
    if (accessDenied.test(name)) {
      results.push(
        fail(
          'aws.states',
          `the instance role may not answer the backup state machine (${name}: ${messageOf(error)}): ` +
            `attach ${policyName} to it; without states:SendTaskSuccess no backup of this host completes`,
        ),
      );
    } else if (/InvalidToken|TaskDoesNotExist|TaskTimedOut/.test(name)) {
      results.push(
        ok('aws.states', `the instance role may answer the backup state machine (a made-up token: ${name})`),
      );
    } else {
      results.push(warn('aws.states', `Step Functions answered the probe with ${name}: ${messageOf(error)}`));
    }
  }

  if (sample) {
    try {
      await clients.cloudwatch.send(
        new PutMetricDataCommand({ Namespace: hostMetrics.namespace, MetricData: sample }),
      );
      results.push(
        ok(
          'aws.cloudwatch',
          `the instance role may publish archive health (${hostMetrics.namespace}); one sample published`,
        ),
      );
    } catch (error) {
      results.push(
        fail(
          'aws.cloudwatch',
          `the instance role may not publish archive health to ${hostMetrics.namespace} (${errorName(error)}: ` +
            `${messageOf(error)}): attach ${policyName}; until then the "agent silent" alarm fires`,
        ),
      );
    }
  }

  try {
    await clients.ec2.send(new DeleteSnapshotCommand({ SnapshotId: 'snap-00000000000000000', DryRun: true }));
    results.push(warn('aws.least-privilege', 'EC2 did not answer the DryRun of DeleteSnapshot as expected'));
  } catch (error) {
    const name = errorName(error);
    if (name === 'DryRunOperation') {
      results.push(
        warn(
          'aws.least-privilege',
          'the instance role may delete EBS snapshots: whoever breaks into this host could delete its backups. ' +
            'The host needs no EC2 action; remove ec2:DeleteSnapshot from its role',
        ),
      );
    } else if (accessDenied.test(name)) {
      results.push(
        ok(
          'aws.least-privilege',
          'the instance role cannot delete snapshots (DryRun refused), as it should not',
        ),
      );
    } else {
      results.push(warn('aws.least-privilege', `EC2 answered the DryRun with ${name}: ${messageOf(error)}`));
    }
  }
  return results;
}

/** Clients for the instance's region and role. */
export async function defaultAwsClients(): Promise<AwsClients> {
  const [{ STSClient }, { SFNClient }, { CloudWatchClient }, { EC2Client }] = await Promise.all([
    import('@aws-sdk/client-sts'),
    import('@aws-sdk/client-sfn'),
    import('@aws-sdk/client-cloudwatch'),
    import('@aws-sdk/client-ec2'),
  ]);
  return {
    sts: new STSClient(awsClientConfig()),
    sfn: new SFNClient(awsClientConfig()),
    cloudwatch: new CloudWatchClient(awsClientConfig()),
    ec2: new EC2Client(awsClientConfig()),
  };
}
