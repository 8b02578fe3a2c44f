/**
 * Real AWS SDK v3 clients whose requests are answered by the fleet's model
 * instead of the network: a middleware sits below the SDK's retry and signing
 * steps and answers each command from the model, after the model's latency.
 * So the SDK's own retry strategy (its attempts, backoff and jitter, its retry
 * quota) handles the model's throttling answers exactly as it would AWS's.
 * One set of clients per execution stands for the clients of the Lambda
 * containers that run it.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { SFNClient } from '@aws-sdk/client-sfn';
import type { VirtualClock } from './clock.ts';
import type { Ec2Model } from './ec2.ts';
import type { Draw } from './random.ts';
import type { SfnModel } from './sfn.ts';

export interface CallLog {
  /** Every request sent, retries included, by `Service:Action`. */
  calls: Map<string, number>;
  /** Requests answered with an error, by error code. */
  errors: Map<string, number>;
}

export interface ModelWorld {
  clock: VirtualClock;
  ec2: Ec2Model;
  sfn: SfnModel;
  draw: Draw;
}

const credentials = { accessKeyId: 'AKIAFLEETBENCH000000', secretAccessKey: 'fleet-bench-not-a-secret' };

const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

type Stack = EC2Client | SFNClient | KMSClient;

function answeredBy(
  client: Stack,
  world: ModelWorld,
  log: CallLog,
  answer: (action: string, input: Record<string, unknown>) => Record<string, unknown>,
  service: string,
): void {
  (client.middlewareStack as { add: (middleware: unknown, options: object) => void }).add(
    (_next: unknown, context: { commandName?: string }) =>
      async (args: { input: Record<string, unknown> }) => {
        const action = (context.commandName ?? 'Unknown').replace(/Command$/, '');
        bump(log.calls, `${service}:${action}`);
        // API latency: tens of milliseconds, a long tail.
        await world.clock.sleep(world.draw.lognormal(60, 0.5, 15, 2_000));
        try {
          const output = answer(action, args.input);
          return { output: { ...output, $metadata: { httpStatusCode: 200 } }, response: {} };
        } catch (error) {
          bump(log.errors, (error as Error).name);
          throw error;
        }
      },
    { step: 'deserialize', priority: 'high', name: 'fleetModelAnswer' },
  );
}

export interface ModelClients {
  ec2: EC2Client;
  drEc2: EC2Client;
  kms: KMSClient;
  sfn: SFNClient;
}

/** The clients of one execution's Lambdas: EC2 in the source and DR Regions, KMS and Step Functions. */
export function modelClients(
  world: ModelWorld,
  log: CallLog,
  regions: { source: string; dr: string },
): ModelClients {
  const ec2 = new EC2Client({ region: regions.source, credentials });
  answeredBy(ec2, world, log, (action, input) => world.ec2.answer(regions.source, action, input), 'EC2');
  const drEc2 = new EC2Client({ region: regions.dr, credentials });
  answeredBy(drEc2, world, log, (action, input) => world.ec2.answer(regions.dr, action, input), 'EC2');
  const sfn = new SFNClient({ region: regions.source, credentials });
  answeredBy(sfn, world, log, (action, input) => world.sfn.answer(action, input), 'SFN');
  const kms = new KMSClient({ region: regions.source, credentials });
  answeredBy(
    kms,
    world,
    log,
    (action) => {
      if (action === 'DescribeKey') return { KeyMetadata: { KeyManager: 'CUSTOMER', KeyId: 'fleet-key' } };
      return { GrantId: 'fleet-grant' };
    },
    'KMS',
  );
  return { ec2, drEc2, kms, sfn };
}
