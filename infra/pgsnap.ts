/**
 * Everything pgsnap deploys for one environment, as one construct a team can
 * add to its own CDK app: the repository bucket, the agent's SSM document, the
 * backup state machine and its Lambdas, schedules, alarms, and the policy for
 * the database hosts.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Bucket, IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { ClusterTarget } from '#domain/backup/plan';
import { snapshotTags } from '#domain/ebs/snapshots';
import { AfterBackup } from './backup/after-backup.ts';
import { AgentDocument, agentDocumentParameters } from './backup/agent-document.ts';
import { BackupStateMachine } from './backup/backup-state-machine.ts';
import { BackupSchedules } from './backup/schedules.ts';
import { type EnvironmentConfig, type EnvironmentInput, environmentSchema } from './config/config.ts';
import { drNames, isCrossAccountDr } from './dr/dr-config.ts';
import { WalReplication } from './dr/wal-replication.ts';
import { acknowledge, bucketFinding, nagArn } from './guards/acknowledge.ts';
import { AgentHostPolicy } from './guards/agent-host-policy.ts';
import { AwsLimits } from './guards/aws-limits.ts';
import { hostStatements } from './guards/cluster-hosts.ts';
import { RepositoryBucket } from './guards/repository-bucket.ts';
import { BackupFunction } from './lambda/handler-function.ts';
import { ArchiveAlarms } from './monitoring/archive-alarms.ts';
import { BackupAge } from './monitoring/backup-age.ts';
import { BackupAlarms } from './monitoring/backup-alarms.ts';
import { PgsnapDashboard } from './monitoring/dashboard.ts';
import { BackupLogQueries } from './monitoring/log-queries.ts';
import { backupMetrics } from './monitoring/metrics-and-events.ts';
import { Restore } from './restore/restore-in-aws.ts';

export interface PgsnapProps {
  /** The environment's configuration; validated (and defaulted) here if it was not already. */
  environment: EnvironmentInput | EnvironmentConfig;
}

/** Lambda environment variables share a 4 KB limit. */
const maxClustersVariableBytes = 3_500;

export class Pgsnap extends Construct {
  readonly repository: RepositoryBucket;
  readonly backup: BackupStateMachine;
  readonly hostPolicy: AgentHostPolicy;
  readonly alarms: BackupAlarms;
  readonly document: AgentDocument;
  readonly restore: Restore;

  constructor(scope: Construct, id: string, props: PgsnapProps) {
    super(scope, id);
    const config = environmentSchema.parse(props.environment);
    const stack = Stack.of(this);
    const stateMachineName = `pgsnap-${config.name}-backup`;
    const stateMachineArn = BackupStateMachine.arnFor(this, stateMachineName);

    this.repository = new RepositoryBucket(this, 'Repository');
    const bucketOf = new Map<string, IBucket>();
    const repositoryOf = (cluster: EnvironmentConfig['clusters'][number]): IBucket => {
      const name = cluster.repository.bucketName;
      if (!name) return this.repository.bucket;
      let bucket = bucketOf.get(name);
      if (!bucket) {
        bucket = new RepositoryBucket(this, `Repository-${name}`, { bucketName: name }).bucket;
        bucketOf.set(name, bucket);
      }
      return bucket;
    };

    this.document = new AgentDocument(this, 'AgentDocument');

    const targets: ClusterTarget[] = config.clusters.map((cluster) => ({
      name: cluster.name,
      ...('instanceId' in cluster.instance
        ? { instanceId: cluster.instance.instanceId }
        : { instanceTags: cluster.instance.tags }),
      volumeIds: cluster.volumeIds ?? [],
      fastCheckpoint: cluster.fastCheckpoint,
      maxBackupMinutes: cluster.maxBackupMinutes,
      repository: `s3://${repositoryOf(cluster).bucketName}/${cluster.repository.prefix}`,
    }));
    const clustersVariable = JSON.stringify(targets);
    if (Buffer.byteLength(clustersVariable) > maxClustersVariableBytes) {
      throw new Error(
        `environment ${config.name}: too many clusters for one stack; split them into environments`,
      );
    }

    const prepareBackup = new BackupFunction(this, 'PrepareBackup', {
      handler: 'prepare-backup',
      description: 'pgsnap: checks a backup request and finds the cluster',
      environment: { PGSNAP_CLUSTERS: clustersVariable },
    });
    prepareBackup.addToRolePolicy(
      new PolicyStatement({ actions: ['states:ListExecutions'], resources: [stateMachineArn] }),
    );
    prepareBackup.addToRolePolicy(
      new PolicyStatement({
        actions: ['states:DescribeExecution'],
        resources: [
          stack.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${stateMachineName}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );

    const createSnapshots = new BackupFunction(this, 'CreateSnapshots', {
      handler: 'create-snapshots',
      description: "pgsnap: snapshots the cluster's volumes in one CreateSnapshots call",
    });
    const clusterNames = config.clusters.map((c) => c.name);
    for (const statement of hostStatements(
      this,
      config.clusters,
      ['ec2:CreateSnapshots'],
      'aws:ResourceTag',
    )) {
      createSnapshots.addToRolePolicy(statement);
    }
    const snapshotArn = stack.formatArn({
      service: 'ec2',
      account: '',
      resource: 'snapshot',
      resourceName: '*',
    });
    createSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:CreateSnapshots'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*' })],
      }),
    );
    createSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:CreateSnapshots'],
        resources: [snapshotArn],
        conditions: { StringEquals: { [`aws:RequestTag/${snapshotTags.cluster}`]: clusterNames } },
      }),
    );
    createSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:CreateTags'],
        resources: [snapshotArn],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
    );

    const snapshotWildcard = `AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'snapshot/*', { account: false })}]`;
    acknowledge(createSnapshots, {
      [snapshotWildcard]:
        'snapshot ids are not known before they exist; creating and tagging is allowed only for snapshots ' +
        'tagged with a configured cluster (aws:RequestTag) and only as part of CreateSnapshots (ec2:CreateAction)',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'volume/*')}]`]:
        'CreateSnapshots needs the volumes of the instance; the instance permission limits which volumes those are',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'instance/*')}]`]:
        'a cluster selected by tags may be snapshotted only on instances carrying exactly those tags (condition)',
    });

    const checkSnapshots = new BackupFunction(this, 'CheckSnapshots', {
      handler: 'check-snapshots',
      description: 'pgsnap: checks whether the snapshots of a backup are completed',
      environment: {
        PGSNAP_FIRST_POLL_SECONDS: String(config.timeouts.firstPollSeconds),
        PGSNAP_MAX_POLL_SECONDS: String(config.timeouts.maxPollSeconds),
        PGSNAP_SNAPSHOT_HOURS: String(config.timeouts.snapshotHours),
      },
    });

    const deleteSnapshots = new BackupFunction(this, 'DeleteSnapshots', {
      handler: 'delete-snapshots',
      description: "pgsnap: deletes a failed backup's snapshots, found by their tags",
      timeout: Duration.minutes(2),
    });
    deleteSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:DeleteSnapshot'],
        resources: [snapshotArn],
        conditions: { StringEquals: { [`aws:ResourceTag/${snapshotTags.cluster}`]: clusterNames } },
      }),
    );

    acknowledge(deleteSnapshots, {
      [snapshotWildcard]:
        'deletion is allowed only for snapshots tagged with a configured cluster (aws:ResourceTag)',
    });
    acknowledge(prepareBackup, {
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'states', `execution:${stateMachineName}:*`)}]`]:
        "reads the input of this state machine's own running executions, to find a running backup of the same cluster",
    });

    const recordBackup = new BackupFunction(this, 'RecordBackup', {
      handler: 'record-backup',
      description: "pgsnap: records the snapshots, the completion or the failure in the backup's manifest",
      environment: {
        PGSNAP_METRICS_NAMESPACE: backupMetrics.namespace,
        PGSNAP_METRICS_DIMENSION: backupMetrics.dimension,
      },
    });
    // The completed backup's durations (domain/backup/durations.ts); PutMetricData has no resource-level permissions.
    recordBackup.addToRolePolicy(
      new PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': backupMetrics.namespace } },
      }),
    );
    // CreateSnapshots records its call and the snapshot ids in the manifest too (idempotency).
    for (const fn of [recordBackup, createSnapshots]) {
      for (const cluster of config.clusters) {
        const backups = `${cluster.repository.prefix}${cluster.name}/backups/*`;
        repositoryOf(cluster).grantReadWrite(fn, backups);
        acknowledge(fn, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(repositoryOf(cluster))}/${backups}]`]: `reads and rewrites the manifests of ${cluster.name}'s backups, under its prefix only`,
        });
      }
    }
    for (const fn of [recordBackup, createSnapshots]) {
      acknowledge(fn, {
        'AwsSolutions-IAM5[Action::s3:GetObject*]':
          'CDK grantReadWrite: object reads, limited to the backups prefix',
        'AwsSolutions-IAM5[Action::s3:GetBucket*]':
          'CDK grantReadWrite: bucket location and settings, read only',
        'AwsSolutions-IAM5[Action::s3:List*]':
          'CDK grantReadWrite: listing, needed to tell a missing manifest',
        'AwsSolutions-IAM5[Action::s3:DeleteObject*]':
          'CDK grantReadWrite: object writes, limited to the backups prefix',
        'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantReadWrite: aborting its own multipart uploads',
        'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
          'CDK key grant for the repository key, needed for SSE-KMS objects',
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]':
          'CDK key grant for the repository key, needed for SSE-KMS objects',
      });
    }

    // Describe* calls have no resource-level permissions in EC2.
    const describe = (actions: string[]) => new PolicyStatement({ actions, resources: ['*'] });
    prepareBackup.addToRolePolicy(describe(['ec2:DescribeInstances']));
    createSnapshots.addToRolePolicy(
      describe(['ec2:DescribeInstances', 'ec2:DescribeVolumes', 'ec2:DescribeSnapshots']),
    );
    checkSnapshots.addToRolePolicy(describe(['ec2:DescribeSnapshots']));
    deleteSnapshots.addToRolePolicy(describe(['ec2:DescribeSnapshots']));

    const afterBackup = new AfterBackup(this, 'AfterBackup', {
      config,
      repositoryOf: (cluster) => {
        const bucket = repositoryOf(cluster);
        return { bucket, url: `s3://${bucket.bucketName}/${cluster.repository.prefix}` };
      },
    });
    this.backup = new BackupStateMachine(this, 'Backup', {
      stateMachineName,
      functions: { prepareBackup, createSnapshots, checkSnapshots, deleteSnapshots, recordBackup },
      documentName: this.document.documentName,
      timeouts: config.timeouts,
      afterCompleted: (scope, done) => afterBackup.steps(scope, done),
    });
    for (const statement of hostStatements(this, config.clusters, ['ssm:SendCommand'], 'ssm:resourceTag')) {
      this.backup.stateMachine.addToRolePolicy(statement);
    }

    new BackupSchedules(this, 'Schedules', {
      clusters: config.clusters,
      stateMachine: this.backup.stateMachine,
    });
    this.alarms = new BackupAlarms(this, 'Alarms', {
      clusters: config.clusters,
      notifications: config.notifications,
      stateMachine: this.backup.stateMachine,
    });
    afterBackup.attach(this.backup.stateMachine, this.alarms.topic);
    new ArchiveAlarms(this, 'ArchiveAlarms', { clusters: config.clusters, topic: this.alarms.topic });
    const dr = config.dr;
    const replicated = config.clusters.filter((c) => c.copyToDr && !c.repository.bucketName);
    if (dr?.replicateWal && this.repository.key && replicated.length > 0) {
      new WalReplication(this, 'WalReplication', {
        bucket: this.repository.bucket as Bucket,
        key: this.repository.key,
        names: drNames(config, dr),
        crossAccount: isCrossAccountDr(config, dr),
        walPrefixes: replicated.map((c) => `${c.repository.prefix}${c.name}/wal/`),
      });
    }
    this.restore = new Restore(this, 'Restore', {
      stateMachineName: `pgsnap-${config.name}-restore`,
      clusters: config.clusters.map((cluster) => ({
        name: cluster.name,
        bucket: repositoryOf(cluster),
        prefix: cluster.repository.prefix,
        drills: cluster.drills,
      })),
      timeouts: config.timeouts,
      topic: this.alarms.topic,
    });
    // cdk synth fails on any of AWS's documented limits the definition or a schedule breaks.
    this.node.addValidation(
      new AwsLimits(this, {
        parameters: agentDocumentParameters,
        // The execution name (backupId) has a fixed form, a cluster name at most 63 characters (domain/backup/input.ts).
        inputMaxLength: { '$.backupId': '20260101T030000Z-a1b2c3'.length, '$.cluster': 63 },
      }),
    );
    // The pin, the WAL and the artifacts never change once written (DESIGN.md); the manifests do.
    this.repository.writeOnce(
      config.clusters
        .filter((cluster) => !cluster.repository.bucketName)
        .flatMap((cluster) => {
          const root = `${cluster.repository.prefix}${cluster.name}`;
          return [
            `${root}/cluster.json`,
            `${root}/wal/*`,
            `${root}/backups/*/backup_label`,
            `${root}/backups/*/tablespace_map`,
            `${root}/backups/*.backup`,
          ];
        }),
    );
    this.hostPolicy = new AgentHostPolicy(this, 'AgentHostPolicy', {
      environment: config.name,
      stateMachineArn,
      repositories: config.clusters.map((cluster) => ({
        bucket: repositoryOf(cluster),
        prefix: cluster.repository.prefix,
        cluster: cluster.name,
      })),
      ...(this.repository.key
        ? { repositoryKey: this.repository.key, keyBucket: this.repository.bucket }
        : {}),
    });
    new BackupAge(this, 'BackupAge', {
      clusters: config.clusters.map((cluster) => ({
        name: cluster.name,
        repository: `s3://${repositoryOf(cluster).bucketName}/${cluster.repository.prefix}`,
        bucket: repositoryOf(cluster),
        prefix: `${cluster.repository.prefix}${cluster.name}/`,
        copiedToDr: config.dr !== undefined && cluster.copyToDr,
      })),
    });
    new BackupLogQueries(this, 'LogQueries', { environment: config.name, functionsUnder: this });
    // Last: its status widget shows every alarm made above.
    new PgsnapDashboard(this, 'Dashboard', {
      config,
      stateMachine: this.backup.stateMachine,
      alarmsUnder: this,
      copiesToDr: config.dr !== undefined,
    });
  }
}
