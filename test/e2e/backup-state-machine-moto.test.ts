/**
 * The synthesized backup state machine executed in moto's Step Functions
 * engine (moto 5.2.1, `stepfunctions.execute_state_machine`), the second
 * engine beside aws-local-stepfunctions (backup-state-machine.test.ts):
 * CreateStateMachine with the synthesized definition, StartExecution, and the
 * engine runs it. Its SDK tasks (SSM SendCommand .waitForTaskToken,
 * CloudWatch PutMetricData, EventBridge PutEvents) go to moto's services; its
 * Lambda tasks to the real handlers (functions/*.ts) in this process through
 * a server in front of moto that answers the Lambda Invoke API (moto's Lambda
 * needs docker to run a function; see test/support/moto-front.ts); the
 * handlers' EC2 is moto's, with an instance and attached volumes made per
 * test; the host steps run the synthesized SSM document's script with the
 * real agent against a real PostgreSQL 15, and the agent answers moto's
 * engine itself with SendTaskSuccess / SendTaskFailure.
 *
 * What moto 5.2.1 cannot do, and where it is tested instead:
 * - Its snapshots are `completed` as soon as CreateSnapshots returns and never
 *   in `error`: the first poll's answer is made `pending` here (so the
 *   engine's wait loop runs), and the error case changes one snapshot's state
 *   in moto's DescribeSnapshots answer. Snapshots that stay pending for a
 *   while are in backup-state-machine.test.ts (test/support/fake-ec2.ts).
 * - Its CreateSnapshots ignores ExcludeDataVolumeIds (moto/ec2/models/
 *   elastic_block_store.py create_snapshots snapshots every attached volume
 *   but the boot one): the instance here has only the boot volume and the
 *   cluster's two, and "exactly the cluster's volumes with another one
 *   attached" stays in backup-state-machine.test.ts.
 * - Lambda without docker: answered in front of moto, as said above.
 * - While an execution waits for a task token, moto fails StartExecution of
 *   the same state machine with HTTP 500 (see the last test, written as far
 *   as it goes and marked test.fails): "another backup of the cluster is
 *   running" stays in backup-state-machine.test.ts, and moto is reset before
 *   each test (aws-contract-task-token.test.ts found the same).
 * - SendTaskFailure's cause is dropped by moto's server, and its engine ends
 *   a Fail state whose ErrorPath gives a `States.` name with States.Runtime:
 *   see sentFailures and the timeout test.
 * - LockSnapshot, DescribeLockedSnapshots and cross-account CopySnapshot:
 *   not used by these paths; see test/unit/snapshot-locks.test.ts and
 *   dr-branch.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateStateMachineCommand,
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { CreateDocumentCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DynamoDbBudgetStore } from '#domain/budget/dynamodb-store';
import { newBackupId } from '#domain/ids';
import { acquireSnapshotBudgetHandler } from '../../functions/acquire-snapshot-budget.ts';
import { checkSnapshotsHandler } from '../../functions/check-snapshots.ts';
import { stepFunctionsAnswers } from '../../functions/commons/task-answers.ts';
import { createSnapshotsHandler } from '../../functions/create-snapshots.ts';
import { deleteSnapshotsHandler } from '../../functions/delete-snapshots.ts';
import { prepareBackupHandler } from '../../functions/prepare-backup.ts';
import { handler as recordBackup } from '../../functions/record-backup.ts';
import { releaseSnapshotBudgetHandler } from '../../functions/release-snapshot-budget.ts';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { setLocalCatalog } from '../../local/state-machine.ts';
import { backupAbortedLogLine, pgsnapSessions } from '../support/backup-mode.ts';
import { stateMachineDefinition, synthStack } from '../support/backup-stack.ts';
import { Cluster } from '../support/cluster.ts';
import { Moto, motoAccount, motoCredentials, skipWithoutMoto } from '../support/moto.ts';
import { type FrontAnswer, type LambdaHandler, MotoFront } from '../support/moto-front.ts';
import { pgsnap, pgsnapBin } from '../support/pgsnap.ts';
import { type TestRepository, testRepository } from '../support/repository.ts';
import { fakeBinDir, renderAgentDocument, runDocument } from '../support/ssm-document.ts';

const region = 'eu-west-1';
const documentName = 'pgsnap-e2e-agent';

// The definition does not name the instance or the volumes (the first step reads them from
// the catalog): these are placeholders for the synthesis, moto's own ids are used at run time.
const environment: EnvironmentInput = {
  name: 'e2e',
  account: motoAccount,
  region,
  clusters: [
    {
      name: 'orders-db',
      instance: { instanceId: 'i-0123456789abcdef0' },
      volumeIds: ['vol-0000000000000000b', 'vol-0000000000000000c'],
      fastCheckpoint: true,
    },
  ],
  timeouts: { hostCommandSeconds: 120, heartbeatSeconds: 60 },
};
const { template } = synthStack(environment);
/** The SSM document's content as the template gives it to CloudFormation. */
const documentContent = Object.values(
  template.toJSON().Resources as Record<string, { Type: string; Properties: { Content: unknown } }>,
).find((resource) => resource.Type === 'AWS::SSM::Document')!.Properties.Content;
const synthesized = stateMachineDefinition(template);
/** A definition whose host steps time out after 3 s, for the timeout case. */
const impatient = stateMachineDefinition(
  synthStack({ ...environment, timeouts: { hostCommandSeconds: 3, heartbeatSeconds: 60 } }).template,
);

/**
 * The definition with its references resolved in moto: the SSM document
 * (created there from the template's content) by its name; the Lambda
 * functions are already ARNs in moto's account (infra/local-run/synthesize.ts), which
 * the front answers.
 */
function resolved(asl: typeof synthesized): typeof synthesized {
  const text = JSON.stringify(asl);
  if (!/"ref-PgsnapAgentDocument[0-9A-F]{8}"/.test(text))
    throw new Error('the definition names no agent document');
  return JSON.parse(text.replace(/"ref-PgsnapAgentDocument[0-9A-F]{8}"/g, JSON.stringify(documentName)));
}
const definition = resolved(synthesized);
const impatientDefinition = resolved(impatient);
// A Lambda task names its function in Resource, or (lambda:invoke.waitForTaskToken, the acquire step) in
// Parameters.FunctionName, which moto's engine invokes as well.
const functionNames = [
  ...new Set(
    Object.values(definition.States)
      .flatMap((state) => [
        String(state.Resource ?? ''),
        String((state.Parameters as { FunctionName?: unknown } | undefined)?.FunctionName ?? ''),
      ])
      .filter((resource) => resource.startsWith('arn:aws:lambda:')),
  ),
].map((arn) => arn.split(':').pop()!);

interface HostLog {
  commands: string[];
  /** What each run of the document printed on stderr, when it exited non-zero. */
  failures: string[];
}

let moto: Moto;
let front: MotoFront;
let sfn: SFNClient;
let ec2: EC2Client;
let ssm: SSMClient;
let cluster: Cluster;
let repo: TestRepository;
let scratch: string;
let agentEnv: NodeJS.ProcessEnv;
let shimDir: string;
let host: HostLog;
let instanceId: string;
let volumes: { data: string; wal: string };
/** Runs once the snapshot step's handler returned, before the engine goes on. */
let afterSnapshot: (() => Promise<void>) | undefined;
/** Host commands that never answer (SSM agent hung, instance unreachable): the task token is never returned. */
let unanswered: Set<string>;
const hostRuns = new Set<Promise<unknown>>();

function client<T>(Client: new (config: object) => T, endpoint: string): T {
  return new Client({ endpoint, region, credentials: motoCredentials, maxAttempts: 1 });
}

/** The Lambda functions of the definition, by name: the real handlers, with moto's EC2 and Step Functions. */
function bindFunctions(): void {
  // The handlers' EC2 calls go through the front, where a test can change moto's answer.
  const handlerEc2 = client(EC2Client, front.endpoint);
  const create = createSnapshotsHandler(handlerEc2);
  // The budget in moto's DynamoDB, through the front: conditional writes as in AWS.
  const budget = new DynamoDbBudgetStore(client(DynamoDBClient, front.endpoint), budgetTable);
  const handlers: Record<string, LambdaHandler> = {
    // The acquire step waits for its task token: the handlers answer moto's engine with SendTaskSuccess.
    AcquireSnapshotBudget: acquireSnapshotBudgetHandler(
      () => budget,
      () => stepFunctionsAnswers(sfn),
    ),
    ReleaseSnapshotBudget: releaseSnapshotBudgetHandler(
      () => budget,
      () => stepFunctionsAnswers(sfn),
    ),
    PrepareBackup: prepareBackupHandler({ ec2: handlerEc2 }),
    CreateSnapshots: async (event) => {
      const result = await create(event);
      await afterSnapshot?.();
      return result;
    },
    RecordBackup: recordBackup,
    CheckSnapshots: checkSnapshotsHandler(handlerEc2),
    DeleteSnapshots: deleteSnapshotsHandler(handlerEc2),
  };
  for (const name of functionNames) {
    const role = /^Pgsnap(\w+?)[0-9A-F]{8}$/.exec(name)?.[1];
    const handler = role ? handlers[role] : undefined;
    if (!handler) throw new Error(`the definition calls Lambda ${name}, which this test does not bind`);
    front.functions.set(name, handler);
  }
}

/**
 * The host: SSM Run Command with the synthesized document. A parameter the
 * document's patterns refuse is refused as SSM refuses it (InvalidParameters,
 * before any command runs); otherwise moto records the command, and once it
 * answered, the document's script runs with the real agent, which answers
 * moto's engine with the task token.
 */
function installHost(): void {
  front.before = (request) => {
    if (request.service !== 'ssm' || request.action !== 'SendCommand') return undefined;
    try {
      renderAgentDocument(parametersOf(request.body));
    } catch (error) {
      return {
        status: 400,
        headers: { 'content-type': 'application/x-amz-json-1.1' },
        body: JSON.stringify({ __type: 'InvalidParameters', message: (error as Error).message }),
      };
    }
    return undefined;
  };
  const after = front.after;
  front.after = (request, answer) => {
    if (request.service === 'ssm' && request.action === 'SendCommand' && answer.status === 200) {
      const run = runOnHost(parametersOf(request.body));
      hostRuns.add(run);
      void run.finally(() => hostRuns.delete(run));
    }
    return after ? after(request, answer) : answer;
  };
}

/**
 * What the agent sent with SendTaskFailure. moto 5.2.1 drops the cause
 * (moto/stepfunctions/responses.py send_task_failure passes only `error` on),
 * so the execution's cause after a host failure is empty in moto; it is read
 * here, as sent, instead.
 */
function sentFailures(): Array<{ error: string; cause: string }> {
  return front.received('states', 'SendTaskFailure').map((request) => {
    const { error, cause } = JSON.parse(request.body) as { error: string; cause: string };
    return { error, cause };
  });
}

/** What the agent sent with SendTaskSuccess, in order. */
function sentSuccesses(): Array<Record<string, unknown>> {
  return front
    .received('states', 'SendTaskSuccess')
    .map((request) => JSON.parse((JSON.parse(request.body) as { output: string }).output));
}

function parametersOf(body: string): Record<string, string> {
  const { Parameters } = JSON.parse(body) as { Parameters: Record<string, string[]> };
  return Object.fromEntries(Object.entries(Parameters).map(([key, value]) => [key, value[0]!]));
}

async function runOnHost(values: Record<string, string>): Promise<void> {
  if (unanswered.has(values.command!)) {
    host.commands.push(`${values.command} (no answer)`);
    return;
  }
  host.commands.push(values.command!);
  // The repository as the host's pgsnap.env names it: the document passes none.
  const result = await runDocument(renderAgentDocument(values), shimDir, {
    ...agentEnv,
    PGSNAP_REPO: repo.url,
  });
  if (result.code !== 0) host.failures.push(`${values.command} exited ${result.code}: ${result.stderr}`);
}

/** Changes moto's answer to the handlers' DescribeSnapshots by id (the completion poll). */
function onPoll(change: (body: string, poll: number) => string): void {
  let polls = 0;
  const previous = front.after;
  front.after = (request, answer): FrontAnswer => {
    const changed = previous ? previous(request, answer) : answer;
    if (request.service !== 'ec2' || request.action !== 'DescribeSnapshots') return changed;
    if (!/SnapshotId\.1=/.test(request.body)) return changed;
    return { ...changed, body: change(changed.body, ++polls) };
  };
}

function withState(body: string, volumeId: string | undefined, from: string, to: string): string {
  if (volumeId === undefined) return body.replaceAll(`<status>${from}</status>`, `<status>${to}</status>`);
  return body.replace(
    new RegExp(`(<volumeId>${volumeId}</volumeId>[\\s\\S]*?)<status>${from}</status>`),
    `$1<status>${to}</status>`,
  );
}

const budgetTable = 'pgsnap-e2e-budgets';
const budgetKey = `pending-snapshots#${motoAccount}#${region}`;

/** A fresh moto with one instance: its boot volume and the cluster's data and WAL volumes attached. */
async function freshAccount(): Promise<void> {
  await moto.reset();
  const dynamodb = client(DynamoDBClient, moto.endpoint);
  await dynamodb.send(
    new CreateTableCommand({
      TableName: budgetTable,
      AttributeDefinitions: [{ AttributeName: 'budget', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'budget', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  dynamodb.destroy();
  const run = await ec2.send(
    new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' }),
  );
  const instance = run.Instances![0]!;
  instanceId = instance.InstanceId!;
  const zone = instance.Placement!.AvailabilityZone!;
  const attach = async (device: string) => {
    const { VolumeId } = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: zone, Size: 10 }));
    await ec2.send(new AttachVolumeCommand({ VolumeId, InstanceId: instanceId, Device: device }));
    return VolumeId!;
  };
  volumes = { data: await attach('/dev/sdf'), wal: await attach('/dev/sdg') };
  setLocalCatalog({
    clusters: [
      {
        name: 'orders-db',
        instanceId,
        volumeIds: [volumes.data, volumes.wal],
        fastCheckpoint: true,
        maxBackupMinutes: 60,
        repository: repo.url,
      },
    ],
  });
  await ssm.send(
    new CreateDocumentCommand({
      Name: documentName,
      DocumentType: 'Command',
      DocumentFormat: 'JSON',
      Content: JSON.stringify(documentContent),
    }),
  );
}

/** The pending-snapshot budget as moto's DynamoDB holds it. */
async function budgetHeld() {
  const store = new DynamoDbBudgetStore(client(DynamoDBClient, moto.endpoint), budgetTable);
  return (await store.read(budgetKey))?.record;
}

interface MotoRun {
  status: string;
  /** The execution's error and cause, when it failed (from its ExecutionFailed event). */
  failure?: { error: string; cause: string };
  output?: Record<string, unknown>;
  /** States in the order they were entered, from the execution's history. */
  entered: string[];
  events: Array<{ detailType: string; detail: Record<string, unknown> }>;
  metrics: Array<{ name: string; cluster?: string }>;
}

async function createStateMachine(asl = definition): Promise<string> {
  const { stateMachineArn } = await sfn.send(
    new CreateStateMachineCommand({
      name: 'pgsnap-e2e-backup',
      definition: JSON.stringify(asl),
      roleArn: `arn:aws:iam::${motoAccount}:role/pgsnap-e2e-backup`,
    }),
  );
  return stateMachineArn!;
}

async function backup(
  options: {
    definition?: typeof definition;
    input?: Record<string, unknown>;
    /** An existing state machine instead of a new one. */
    stateMachineArn?: string;
  } = {},
): Promise<{ run: MotoRun; backupId: string }> {
  const stateMachineArn = options.stateMachineArn ?? (await createStateMachine(options.definition));
  const backupId = newBackupId();
  const { executionArn } = await sfn.send(
    new StartExecutionCommand({
      stateMachineArn,
      name: backupId,
      input: JSON.stringify(options.input ?? { cluster: 'orders-db', label: 'e2e backup', trigger: 'cli' }),
    }),
  );
  let described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  const deadline = Date.now() + 100_000;
  while (described.status === 'RUNNING') {
    if (Date.now() > deadline) {
      throw new Error(`${executionArn} still runs after 100 s; host: ${host.failures.join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  }
  await Promise.all(hostRuns);
  const history: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken }));
    history.push(...(page.events ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  const failed = history.find((e) => e.type === 'ExecutionFailed')?.executionFailedEventDetails;
  const run: MotoRun = {
    status: described.status!,
    ...(failed ? { failure: { error: failed.error ?? '', cause: failed.cause ?? '' } } : {}),
    ...(described.output ? { output: JSON.parse(described.output) } : {}),
    entered: history.filter((e) => e.stateEnteredEventDetails).map((e) => e.stateEnteredEventDetails!.name!),
    events: front
      .received('events', 'PutEvents')
      .flatMap((request) =>
        (JSON.parse(request.body) as { Entries: Array<{ DetailType: string; Detail: string }> }).Entries.map(
          (entry) => ({ detailType: entry.DetailType, detail: JSON.parse(entry.Detail) }),
        ),
      ),
    metrics: await metrics(),
  };
  return { run, backupId };
}

/** The metrics in moto's CloudWatch, namespace pgsnap (query protocol: the project has no CloudWatch client). */
async function metrics(): Promise<Array<{ name: string; cluster?: string }>> {
  const answer = await fetch(moto.endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/monitoring/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: new URLSearchParams({
      Action: 'ListMetrics',
      Version: '2010-08-01',
      Namespace: 'pgsnap',
    }).toString(),
  });
  const text = await answer.text();
  if (!answer.ok) throw new Error(`CloudWatch ListMetrics answered ${answer.status}: ${text}`);
  // One chunk per metric, from its Namespace to the next: a metric without dimensions has no <Value>.
  return text
    .split('<Namespace>')
    .slice(1)
    .map((chunk) => {
      const cluster = /<Value>([^<]*)<\/Value>/.exec(chunk)?.[1];
      return {
        name: /<MetricName>([^<]*)<\/MetricName>/.exec(chunk)?.[1] ?? '',
        ...(cluster ? { cluster } : {}),
      };
    });
}

function byVolume<T extends [string | undefined, ...unknown[]]>(rows: T[]): T[] {
  return [...rows].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
}

async function snapshotsOf(backupId: string) {
  const { Snapshots } = await ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:pgsnap:backup-id', Values: [backupId] }] }),
  );
  return (Snapshots ?? []).sort((a, b) => String(a.VolumeId).localeCompare(String(b.VolumeId)));
}

async function manifestOf(backupId: string) {
  const repository = await repo.open();
  try {
    return await repository.readManifest(backupId);
  } finally {
    repository.close();
  }
}

function abortLines(): number {
  return cluster.log().split(backupAbortedLogLine).length - 1;
}

async function expectBackupModeLeft(): Promise<void> {
  await expect.poll(() => pgsnapSessions(cluster), { timeout: 10_000 }).toEqual([]);
  const status = await pgsnap(['status', '--cluster', 'orders-db', '--json'], agentEnv);
  expect(status.json).toMatchObject({ inProgress: false });
}

describe.skipIf(skipWithoutMoto)("a backup through the synthesized state machine in moto's engine", () => {
  beforeAll(async () => {
    front = await MotoFront.start();
    moto = await Moto.start({ servicesPort: front.port });
    front.upstream = moto.endpoint;
    await moto.configure({ stepfunctions: { execute_state_machine: true } });
    sfn = client(SFNClient, moto.endpoint);
    ec2 = client(EC2Client, moto.endpoint);
    ssm = client(SSMClient, moto.endpoint);
    repo = testRepository('file');
    cluster = await Cluster.create({ major: 15, settings: { archive_command: repo.archiveCommand() } });
    await cluster.query('SELECT pg_switch_wal()');
    scratch = mkdtempSync(join(tmpdir(), 'pgsnap-e2e-moto-'));
    // The agent answers Step Functions through the front (recorded there), which passes it on to moto.
    agentEnv = {
      ...cluster.env,
      PGSNAP_STATE_DIR: join(scratch, 'state'),
      AWS_ENDPOINT_URL_SFN: front.endpoint,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: motoCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: motoCredentials.secretAccessKey,
    };
    shimDir = fakeBinDir(join(scratch, 'bin'), `#!/bin/sh\nexec ${process.execPath} ${pgsnapBin} "$@"\n`);
    process.env.PGSNAP_FIRST_POLL_SECONDS = '1';
    process.env.PGSNAP_MAX_POLL_SECONDS = '2';
    process.env.PGSNAP_SNAPSHOT_HOURS = '24';
    Object.assign(process.env, {
      PGSNAP_PENDING_SNAPSHOTS_KEY: budgetKey,
      PGSNAP_PENDING_SNAPSHOTS_BUDGET: '90',
      PGSNAP_UNLISTED_VOLUMES: '3',
      PGSNAP_BUDGET_LEASE_SECONDS: '3600',
    });
    bindFunctions();
  });

  afterAll(async () => {
    await Promise.all(hostRuns);
    for (const c of [sfn, ec2, ssm]) c?.destroy();
    await moto?.stop();
    await front?.close();
    cluster?.destroy();
    repo?.destroy();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  beforeEach(async () => {
    host = { commands: [], failures: [] };
    afterSnapshot = undefined;
    unanswered = new Set();
    front.requests.length = 0;
    front.before = undefined;
    front.after = undefined;
    installHost();
    await freshAccount();
  });

  test('succeeds: snapshots of the cluster volumes and not the boot volume, backup mode left, completion announced', async () => {
    // moto's snapshots are completed at once: the first poll sees them pending, so the wait loop runs.
    onPoll((body, poll) => (poll === 1 ? withState(body, undefined, 'completed', 'pending') : body));
    const { run, backupId } = await backup();
    expect(run.failure, host.failures.join('\n')).toBeUndefined();
    expect(run.status).toBe('SUCCEEDED');
    expect(host.commands).toEqual(['begin', 'end']);
    // The agent answered both steps itself, to moto's engine.
    const [begun, ended] = sentSuccesses();
    expect(sentSuccesses()).toHaveLength(2);
    expect(sentFailures()).toEqual([]);
    // SSM received both commands with the synthesized document, for moto's instance.
    expect(
      front.received('ssm', 'SendCommand').map((r) => {
        const { DocumentName, InstanceIds } = JSON.parse(r.body);
        return [DocumentName, InstanceIds];
      }),
    ).toEqual([
      [documentName, [instanceId]],
      [documentName, [instanceId]],
    ]);
    // Not the boot volume: moto honours ExcludeBootVolume.
    const snapshots = await snapshotsOf(backupId);
    expect(snapshots.map((s) => [s.VolumeId, s.State])).toEqual(
      byVolume([
        [volumes.data, 'completed'],
        [volumes.wal, 'completed'],
      ]),
    );
    expect(run.events).toEqual([
      {
        detailType: 'pgsnap backup completed',
        detail: expect.objectContaining({
          cluster: 'orders-db',
          backupId,
          label: 'e2e backup',
          startLsn: begun!.startLsn,
          stopLsn: ended!.stopLsn,
          snapshots: expect.arrayContaining([expect.objectContaining({ volumeId: volumes.wal })]),
        }),
      },
    ]);
    expect(ended!.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // The fleet's count: no Cluster dimension (the manifest and the event name the cluster).
    expect(run.metrics).toStrictEqual([{ name: 'BackupCompleted' }]);
    const manifest = await manifestOf(backupId);
    expect(manifest).toMatchObject({
      state: 'completed',
      startLsn: begun!.startLsn,
      snapshots: expect.arrayContaining(
        snapshots.map((s) => ({
          provider: 'ebs',
          snapshotId: s.SnapshotId,
          volumeId: s.VolumeId,
          state: 'completed',
        })),
      ),
    });
    expect(manifest!.snapshots).toHaveLength(2);
    expect(manifest!.artifacts.map((a) => a.name)).toContain('backup_label');
    // End ran as soon as the snapshot ids were in the manifest, before any snapshot was completed.
    const end = run.entered.indexOf('End the backup on the host');
    expect(run.entered.slice(end - 2, end + 2)).toEqual([
      "Snapshot the cluster's volumes",
      'Record the snapshots in the manifest',
      'End the backup on the host',
      'Check whether the snapshots are completed',
    ]);
    expect(run.entered).toContain('Wait before checking the snapshots again');
    // The budget share (two volumes) was taken before begin and returned once the snapshots were completed.
    expect(run.entered.indexOf('Take a share of the pending-snapshot budget')).toBe(
      run.entered.indexOf('Begin the backup on the host') - 1,
    );
    expect(front.received('dynamodb', 'PutItem')).toHaveLength(2);
    expect(await budgetHeld()).toEqual({ held: 0, leases: {} });
    await expectBackupModeLeft();
  });

  test('begin fails: nothing is snapshotted and the failure is announced with its reason', async () => {
    await cluster.query("ALTER SYSTEM SET archive_command = ''");
    await cluster.query('SELECT pg_reload_conf()');
    try {
      const { run, backupId } = await backup();
      expect(run.status).toBe('FAILED');
      expect(run.failure).toMatchObject({ error: 'PreconditionError' });
      expect(sentFailures()).toEqual([
        { error: 'PreconditionError', cause: expect.stringMatching(/archiv/) },
      ]);
      expect(host.commands).toEqual(['begin', 'abort']);
      // The cleanup's abort answered with success.
      expect(front.received('states', 'SendTaskSuccess')).toHaveLength(1);
      expect(front.received('ec2', 'CreateSnapshots')).toEqual([]);
      expect(await snapshotsOf(backupId)).toEqual([]);
      expect(run.events).toEqual([
        {
          detailType: 'pgsnap backup failed',
          detail: expect.objectContaining({ backupId, error: 'PreconditionError', cleanup: { deleted: [] } }),
        },
      ]);
      expect(run.metrics).toStrictEqual([{ name: 'BackupFailed' }]);
      expect(await manifestOf(backupId)).toBeUndefined();
    } finally {
      await cluster.query('ALTER SYSTEM RESET archive_command');
      await cluster.query('SELECT pg_reload_conf()');
    }
    await expectBackupModeLeft();
  });

  test('CreateSnapshots fails: the host aborts the backup and the failure names EC2’s error', async () => {
    // moto never refuses CreateSnapshots: EC2's answer to it is a refusal here, as EC2 words one.
    const before = front.before;
    front.before = (request) =>
      request.service === 'ec2' && request.action === 'CreateSnapshots'
        ? {
            status: 400,
            headers: { 'content-type': 'text/xml' },
            body:
              '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>SnapshotLimitExceeded</Code>' +
              '<Message>Maximum number of snapshots reached</Message></Error></Errors><RequestID>1</RequestID></Response>',
          }
        : before?.(request);
    const aborted = abortLines();
    const { run, backupId } = await backup();
    expect(run.status).toBe('FAILED');
    // A Lambda's error reaches Step Functions as its JSON payload: the cause is that JSON, as in AWS.
    expect(run.failure).toMatchObject({ error: 'SnapshotLimitExceeded' });
    expect(JSON.parse(run.failure!.cause)).toMatchObject({
      errorType: 'SnapshotLimitExceeded',
      errorMessage: 'Maximum number of snapshots reached',
    });
    expect(host.commands).toEqual(['begin', 'abort']);
    expect(await snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'SnapshotLimitExceeded'],
    ]);
    expect(run.metrics).toStrictEqual([{ name: 'BackupFailed' }]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: {
        reason: expect.stringMatching(/^SnapshotLimitExceeded: .*Maximum number of snapshots reached/),
      },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
    // The cleanup path returned the share.
    expect(await budgetHeld()).toEqual({ held: 0, leases: {} });
  });

  test('a snapshot ends in error: every snapshot of the set is deleted and the failure names the snapshot', async () => {
    // moto has no snapshot in error: its answer to the second poll says the WAL volume's is.
    onPoll((body, poll) =>
      poll === 1
        ? withState(body, undefined, 'completed', 'pending')
        : withState(withState(body, undefined, 'completed', 'pending'), volumes.wal, 'pending', 'error'),
    );
    const { run, backupId } = await backup();
    expect(run.status).toBe('FAILED');
    expect(run.failure).toMatchObject({
      error: 'SnapshotFailedError',
      cause: expect.stringContaining(`of volume ${volumes.wal} is in state error`),
    });
    expect(host.commands).toEqual(['begin', 'end']);
    expect(await snapshotsOf(backupId)).toEqual([]);
    expect(front.received('ec2', 'DeleteSnapshot')).toHaveLength(2);
    expect(run.events).toEqual([
      {
        detailType: 'pgsnap backup failed',
        detail: expect.objectContaining({
          backupId,
          error: 'SnapshotFailedError',
          cleanup: { deleted: [expect.stringMatching(/^snap-/), expect.stringMatching(/^snap-/)] },
        }),
      },
    ]);
    expect(run.metrics).toStrictEqual([{ name: 'BackupFailed' }]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringMatching(/^SnapshotFailedError: .* is in state error/) },
    });
    await expectBackupModeLeft();
  });

  test('end fails (the backup session was terminated): snapshots deleted, failure says the backup is not valid', async () => {
    const aborted = abortLines();
    afterSnapshot = async () => {
      await cluster.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pgsnap:%'",
      );
      await expect.poll(() => pgsnapSessions(cluster)).toEqual([]);
    };
    const { run, backupId } = await backup();
    expect(run.status).toBe('FAILED');
    expect(run.failure).toMatchObject({ error: 'BackupInvalidError' });
    expect(sentFailures()).toEqual([
      { error: 'BackupInvalidError', cause: expect.stringContaining('not valid') },
    ]);
    expect(host.commands).toEqual(['begin', 'end', 'abort']);
    expect(await snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'BackupInvalidError'],
    ]);
    expect(run.metrics).toStrictEqual([{ name: 'BackupFailed' }]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('BackupInvalidError') },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  test('end times out: the host is told to abort, snapshots deleted, the timeout announced (moto ends it States.Runtime)', async () => {
    const aborted = abortLines();
    unanswered.add('end');
    const { run, backupId } = await backup({ definition: impatientDefinition });
    expect(run.status).toBe('FAILED');
    // The cleanup path ran to its end, but moto's engine (LocalStack's ASL interpreter) refuses an error
    // name beginning with "States." from the Fail state's ErrorPath, as the ASL specification says states
    // must not report one ("States MAY report errors with other names, which MUST NOT begin with the prefix
    // 'States.'", states-language.net, Errors): the execution then fails with States.Runtime. Whether AWS
    // does the same is not known here; aws-local-stepfunctions ends it with States.Timeout
    // (backup-state-machine.test.ts). The failure event and the manifest carry States.Timeout either way.
    expect(run.entered.at(-1)).toBe('The backup failed');
    expect(run.failure).toEqual({
      error: 'States.Runtime',
      cause: expect.stringContaining("MUST NOT begin with the prefix 'States.', got 'States.Timeout'"),
    });
    expect(host.commands).toEqual(['begin', 'end (no answer)', 'abort']);
    expect(await snapshotsOf(backupId)).toEqual([]);
    expect(run.events.map((e) => [e.detailType, e.detail.error])).toEqual([
      ['pgsnap backup failed', 'States.Timeout'],
    ]);
    expect(run.metrics).toStrictEqual([{ name: 'BackupFailed' }]);
    expect(await manifestOf(backupId)).toMatchObject({
      state: 'failed',
      failure: { reason: expect.stringContaining('States.Timeout') },
    });
    await expectBackupModeLeft();
    expect(abortLines()).toBe(aborted + 1);
  });

  // moto 5.2.1 cannot start a second execution of a state machine while one runs: its StartExecution
  // deep-copies the state machine with its executions (moto/stepfunctions/parser/models.py,
  // start_execution) and answers HTTP 500 when one of them waits for a task token. So this test, as
  // written, fails in moto (test.fails); aws-local-stepfunctions runs the case in
  // backup-state-machine.test.ts. When moto can, test.fails reports it, and `.fails` goes.
  test.fails('another backup of the cluster is running: this one ends at once, touching nothing', async () => {
    unanswered.add('begin');
    const stateMachineArn = await createStateMachine();
    const earlier = newBackupId();
    const { executionArn } = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name: earlier,
        input: JSON.stringify({ cluster: 'orders-db' }),
      }),
    );
    try {
      await expect.poll(() => host.commands, { timeout: 30_000 }).toEqual(['begin (no answer)']);
      host.commands.length = 0;
      const { run } = await backup({ stateMachineArn });
      expect(run.status).toBe('SUCCEEDED');
      expect(run.output).toMatchObject({ running: { Error: 'BackupInProgressError' } });
      expect(JSON.stringify(run.output)).toContain(earlier);
      expect(run.entered.at(-1)).toBe('Leave it to the backup already running');
      expect(host.commands).toEqual(['begin']);
      expect(front.received('ec2', 'CreateSnapshots')).toEqual([]);
      expect(run.events).toEqual([]);
    } finally {
      await sfn.send(new StopExecutionCommand({ executionArn }));
    }
  });
});
