/**
 * The agent's --task-token reports (agent/host/task-token.ts) against moto's Step
 * Functions engine, with task tokens of real executions: moto (with its
 * `stepfunctions.execute_state_machine` setting) runs a state machine whose
 * task `sqs:sendMessage.waitForTaskToken` puts the token on a moto SQS queue
 * and waits; the test takes it from there, as the agent takes it from its
 * command line, and the execution ends with what the agent sent. (SQS is
 * spoken over moto's query API with fetch: the project has no SQS client.)
 */
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { answeringStepFunctions } from '../../agent/host/task-token.ts';
import { Moto, motoAccount, skipWithoutMoto } from '../support/moto.ts';

const region = 'us-east-1';

describe.skipIf(skipWithoutMoto)("the agent's task-token reports against moto Step Functions", () => {
  let moto: Moto;
  let sfn: SFNClient;
  let queueUrl: string;
  let stateMachineArn: string;

  async function sqs(params: Record<string, string>): Promise<string> {
    const answer = await fetch(moto.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        // moto routes a request by the service in the credential scope (unsigned ones go to S3); it checks no signature.
        authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/sqs/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: new URLSearchParams({ Version: '2012-11-05', ...params }).toString(),
    });
    const text = await answer.text();
    if (!answer.ok) throw new Error(`SQS ${params.Action} answered ${answer.status}: ${text}`);
    return text;
  }

  /** Starts an execution and returns it with the task token its waiting task sent to the queue. */
  let executions = 0;
  async function execution(): Promise<{ executionArn: string; taskToken: string }> {
    // A name each: moto's engine names an unnamed execution "None", and a second one then already exists.
    // And moto reset first: once an execution has waited for a token, moto 5.2.1 fails every later
    // StartExecution (its deepcopy of the state machine hits the waiting execution) with HTTP 500.
    await moto.reset();
    const name = `backup-${++executions}`;
    const created = await sqs({ Action: 'CreateQueue', QueueName: 'pgsnap-task-tokens' });
    queueUrl = /<QueueUrl>([^<]*)<\/QueueUrl>/.exec(created)![1]!;
    const definition = {
      StartAt: 'Begin the backup on the host',
      States: {
        'Begin the backup on the host': {
          Type: 'Task',
          Resource: 'arn:aws:states:::sqs:sendMessage.waitForTaskToken',
          Parameters: { QueueUrl: queueUrl, MessageBody: { 'token.$': '$$.Task.Token' } },
          HeartbeatSeconds: 3,
          TimeoutSeconds: 60,
          End: true,
        },
      },
    };
    stateMachineArn = (
      await sfn.send(
        new CreateStateMachineCommand({
          name: 'pgsnap-task-token',
          definition: JSON.stringify(definition),
          roleArn: `arn:aws:iam::${motoAccount}:role/pgsnap-state-machine`,
        }),
      )
    ).stateMachineArn!;
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name, input: '{}' }),
    );
    for (let i = 0; i < 100; i++) {
      const received = await sqs({ Action: 'ReceiveMessage', QueueUrl: queueUrl, WaitTimeSeconds: '1' });
      const body = /<Body>([^<]*)<\/Body>/.exec(received)?.[1];
      if (body) {
        const text = body.replace(/&quot;/g, '"').replace(/&amp;/g, '&');
        return { executionArn: executionArn!, taskToken: (JSON.parse(text) as { token: string }).token };
      }
    }
    throw new Error('no task token on the queue');
  }

  async function ended(executionArn: string) {
    for (let i = 0; i < 100; i++) {
      const described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      if (described.status !== 'RUNNING') return described;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${executionArn} is still running`);
  }

  beforeAll(async () => {
    moto = await Moto.start();
    await moto.configure({ stepfunctions: { execute_state_machine: true } });
    sfn = new SFNClient(moto.client(region));
  });
  afterAll(async () => {
    sfn?.destroy();
    await moto?.stop();
  });

  const quiet = { progress: () => {} };

  test('SendTaskSuccess: the execution succeeds with the document the command printed', async () => {
    const { executionArn, taskToken } = await execution();
    const result = await answeringStepFunctions(
      taskToken,
      async () => ({ startLsn: '0/2000028', timeline: 1 }),
      (r) => ({ ...r, volumes: [] }),
      { ...quiet, client: sfn },
    );
    expect(result).toEqual({ startLsn: '0/2000028', timeline: 1 });
    const done = await ended(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({ startLsn: '0/2000028', timeline: 1, volumes: [] });
  });

  test("SendTaskFailure: the execution fails with the error's name and message, and the command keeps its error", async () => {
    const { executionArn, taskToken } = await execution();
    const failure = Object.assign(new Error('pg_backup_start failed: WAL level not sufficient'), {
      name: 'PreconditionError',
    });
    await expect(
      answeringStepFunctions(
        taskToken,
        async () => {
          throw failure;
        },
        () => ({}),
        { ...quiet, client: sfn },
      ),
    ).rejects.toBe(failure);
    // (moto's DescribeExecution gives the error but no cause; the cause sent is checked in test/unit.)
    expect(await ended(executionArn)).toMatchObject({ status: 'FAILED', error: 'PreconditionError' });
  });

  test('SendTaskHeartbeat: a command longer than HeartbeatSeconds that sends heartbeats still succeeds', async () => {
    const { executionArn, taskToken } = await execution();
    const heard: string[] = [];
    await answeringStepFunctions(
      taskToken,
      () => new Promise((resolve) => setTimeout(() => resolve('stopped'), 5_000)),
      (r) => ({ outcome: r }),
      { progress: (m) => heard.push(m), client: sfn, heartbeatMs: 1_000 },
    );
    expect(heard).toEqual([]); // every heartbeat was taken
    const done = await ended(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({ outcome: 'stopped' });
  });

  test('without heartbeats, the same command outlives HeartbeatSeconds: the task times out', async () => {
    const { executionArn, taskToken } = await execution();
    const heard: string[] = [];
    await answeringStepFunctions(
      taskToken,
      () => new Promise((resolve) => setTimeout(() => resolve('stopped'), 5_000)),
      (r) => ({ outcome: r }),
      { progress: (m) => heard.push(m), client: sfn, heartbeatMs: 60_000 },
    ).catch(() => {});
    // TimeoutSeconds is 60: what ends the task after 3 s is the heartbeat. moto 5.2.1 names it States.Timeout;
    // AWS names it States.HeartbeatTimeout.
    expect(await ended(executionArn)).toMatchObject({ status: 'FAILED', error: 'States.Timeout' });
  });
});
