/**
 * One stack per configured environment, `pgsnap-<name>`, holding one Pgsnap:
 * everything pgsnap deploys for one environment, as one construct a team can
 * add to its own CDK app. Pgsnap only assembles the workflows' constructs: the
 * repository bucket, the agent's SSM document, the backup state machine and
 * its Lambdas, schedules, restore, DR replication, alarms and the dashboard,
 * and the policy for the database hosts.
 */

import { Stack, type StackProps } from 'aws-cdk-lib';
import type { ManagedPolicy } from 'aws-cdk-lib/aws-iam';
import type { Bucket, IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { AfterBackup } from './backup/after-backup.ts';
import { AgentDocument, agentDocumentParameters } from './backup/agent-document.ts';
import { BackupFunctions } from './backup/backup-functions.ts';
import { BackupStateMachine } from './backup/backup-state-machine.ts';
import { BackupSchedules } from './backup/schedules.ts';
import { SnapshotBudget } from './backup/snapshot-budget.ts';
import { ClusterCatalog, catalogClusters } from './config/cluster-catalog.ts';
import { type EnvironmentConfig, type EnvironmentInput, environmentSchema } from './config/config.ts';
import { drNames, drRepositoryUrl, drRpoMinutes, isCrossAccountDr } from './dr/dr-config.ts';
import { WalReplication } from './dr/wal-replication.ts';
import { AgentHostPolicy } from './guards/agent-host-policy.ts';
import { AwsLimits } from './guards/aws-limits.ts';
import { hostStatements } from './guards/cluster-hosts.ts';
import { ClusterShards } from './guards/cluster-shards.ts';
import { DiscoveredHosts } from './guards/discovered-hosts.ts';
import { clusterRoots } from './guards/fleet-grants.ts';
import { LambdaEnvironmentSize } from './guards/lambda-environment.ts';
import { RepositoryBucket, recordKeys, writeOnceKeys } from './guards/repository-bucket.ts';
import { RestoreTargetPolicy } from './guards/restore-target-policy.ts';
import { SnapshotQuota, warnNearSnapshotQuota } from './guards/snapshot-quota.ts';
import { lambdaRolesOf } from './lambda/handler-function.ts';
import { ArchiveAlarms } from './monitoring/archive-alarms.ts';
import { BackupAge, freshnessOf } from './monitoring/backup-age.ts';
import { BackupAlarms } from './monitoring/backup-alarms.ts';
import { PgsnapDashboard } from './monitoring/dashboard.ts';
import { BackupLogQueries } from './monitoring/log-queries.ts';
import { outputs } from './outputs.ts';
import { Restore } from './restore/restore-in-aws.ts';
import { catalogRetention } from './retention/scheduled-retention.ts';

export interface PgsnapProps {
  /** The environment's configuration; validated (and defaulted) here if it was not already. */
  environment: EnvironmentInput | EnvironmentConfig;
}

export class Pgsnap extends Construct {
  readonly repository: RepositoryBucket;
  readonly backup: BackupStateMachine;
  /** Each cluster's host policy, by cluster name (in its shard when there are many clusters). */
  readonly hostPolicy: { readonly policies: ReadonlyMap<string, ManagedPolicy> };
  /** With `discover`: the instance profile tagged hosts run with, and the vendor of their cluster's credentials. */
  readonly discoveredHosts: DiscoveredHosts | undefined;
  /** What restore and drill targets hold instead of the host policy: read only. */
  readonly restoreTargetPolicy: { readonly policies: ReadonlyMap<string, ManagedPolicy> };
  readonly alarms: BackupAlarms;
  readonly document: AgentDocument;
  readonly restore: Restore;

  constructor(scope: Construct, id: string, props: PgsnapProps) {
    super(scope, id);
    const config = environmentSchema.parse(props.environment);
    const stateMachineName = `pgsnap-${config.name}-backup`;
    const stateMachineArn = BackupStateMachine.arnFor(this, stateMachineName);

    // Per-cluster resources in nested stacks once the clusters are many (CloudFormation's 500 per stack).
    const shards = new ClusterShards(
      this,
      config.clusters.map((c) => c.name),
    );
    const scopeOf = (cluster: string, here: Construct) => shards.scopeOf(cluster, here);
    const clustersOf = (names: readonly string[]) => config.clusters.filter((c) => names.includes(c.name));

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
    const repositoryUrl = (cluster: EnvironmentConfig['clusters'][number]) =>
      `s3://${repositoryOf(cluster).bucketName}/${cluster.repository.prefix}`;
    const discover = config.discover;
    const dr = config.dr;
    const backupAgeClusters = config.clusters.map((cluster) => ({
      name: cluster.name,
      repository: repositoryUrl(cluster),
      bucket: repositoryOf(cluster),
      prefix: `${cluster.repository.prefix}${cluster.name}/`,
      copiedToDr: dr !== undefined && cluster.copyToDr,
      drills: cluster.drills !== undefined,
      ...(dr && cluster.copyToDr ? { drRpoMinutes: drRpoMinutes(dr, cluster) } : {}),
      rpoHours: cluster.rpoHours,
      ...(cluster.drills ? { drillDays: cluster.drills.days } : {}),
      watchArchiving: cluster.watchArchiving,
    }));
    const discoveredAge = discover && {
      bucket: this.repository.bucket,
      prefix: discover.defaults.prefix,
      rpoHours: discover.defaults.rpoHours,
      watchArchiving: discover.defaults.watchArchiving,
    };
    const catalog = new ClusterCatalog(this, 'Catalog', {
      freshness: freshnessOf(backupAgeClusters, discoveredAge),
      bucket: this.repository.bucket,
      clusters: catalogClusters(config.clusters, repositoryUrl, (cluster) =>
        dr && cluster.copyToDr ? drRepositoryUrl(drNames(config, dr), cluster) : undefined,
      ).map((entry, i) => {
        const retention = config.clusters[i]!.retention;
        return retention ? { ...entry, retention: catalogRetention(retention, 'source') } : entry;
      }),
      discover: discover && {
        tag: discover.tag,
        repository: `s3://${this.repository.bucket.bucketName}/${discover.defaults.prefix}`,
        defaults: {
          fastCheckpoint: discover.defaults.fastCheckpoint,
          maxBackupMinutes: discover.defaults.maxBackupMinutes,
          recoverySeconds: Math.round(discover.defaults.recoveryHours * 3600),
          ...(discover.defaults.retention
            ? { retention: catalogRetention(discover.defaults.retention, 'source') }
            : {}),
        },
      },
    });

    const functions = new BackupFunctions(this, {
      config,
      stateMachineName,
      stateMachineArn,
      repositoryOf,
      catalog,
    });
    const budget = new SnapshotBudget(this, config);
    const afterBackup = new AfterBackup(this, 'AfterBackup', {
      config,
      repositoryOf: (cluster) => {
        const bucket = repositoryOf(cluster);
        return { bucket, url: `s3://${bucket.bucketName}/${cluster.repository.prefix}` };
      },
      budgetTable: budget.table,
      catalog,
      discoveredBucket: this.repository.bucket,
    });
    this.backup = new BackupStateMachine(this, 'Backup', {
      stateMachineName,
      functions: {
        prepareBackup: functions.prepareBackup,
        createSnapshots: functions.createSnapshots,
        checkSnapshots: functions.checkSnapshots,
        deleteSnapshots: functions.deleteSnapshots,
        recordBackup: functions.recordBackup,
        acquireSnapshotBudget: budget.acquire,
        releaseSnapshotBudget: budget.release,
      },
      documentName: this.document.documentName,
      timeouts: config.timeouts,
      afterCompleted: (scope, done) => afterBackup.steps(scope, done),
    });
    for (const statement of hostStatements(
      this,
      config.clusters,
      ['ssm:SendCommand'],
      'ssm:resourceTag',
      discover?.tag,
    )) {
      this.backup.stateMachine.addToRolePolicy(statement);
    }

    new BackupSchedules(this, 'Schedules', {
      clusters: config.clusters,
      stateMachine: this.backup.stateMachine,
      fleet: discover && { schedules: discover.defaults.schedules, catalog },
    });
    this.alarms = new BackupAlarms(this, 'Alarms', {
      clusters: config.clusters,
      notifications: config.notifications,
      stateMachine: this.backup.stateMachine,
    });
    afterBackup.attach(this.backup.stateMachine, this.alarms.topic);
    for (const shard of shards.shards) {
      new ArchiveAlarms(shard.scope, 'ArchiveAlarms', {
        clusters: clustersOf(shard.clusters),
        topic: this.alarms.topic,
      });
    }
    const replicated = config.clusters.filter((c) => c.copyToDr && !c.repository.bucketName);
    if (dr?.replicateWal && this.repository.key && replicated.length > 0) {
      new WalReplication(this, 'WalReplication', {
        bucket: this.repository.bucket as Bucket,
        key: this.repository.key,
        names: drNames(config, dr),
        crossAccount: isCrossAccountDr(config, dr),
        clusters: replicated.map((c) => ({ name: c.name, prefix: c.repository.prefix })),
      });
    }
    const targetPolicies = new Map<string, ManagedPolicy>();
    for (const shard of shards.shards) {
      const policy = new RestoreTargetPolicy(shard.scope, 'RestoreTargetPolicy', {
        name: config.name,
        repositories: clustersOf(shard.clusters).map((cluster) => ({
          bucket: repositoryOf(cluster),
          prefix: cluster.repository.prefix,
          cluster: cluster.name,
        })),
        repositoryKey: this.repository.key && { key: this.repository.key, bucket: this.repository.bucket },
      });
      for (const [cluster, managed] of policy.policies) targetPolicies.set(cluster, managed);
    }
    this.restoreTargetPolicy = { policies: targetPolicies };
    this.restore = new Restore(this, 'Restore', {
      stateMachineName: `pgsnap-${config.name}-restore`,
      clusters: config.clusters.map((cluster) => ({
        name: cluster.name,
        bucket: repositoryOf(cluster),
        prefix: cluster.repository.prefix,
        drills: cluster.drills,
        recoveryHours: cluster.recoveryHours,
      })),
      timeouts: config.timeouts,
      topic: this.alarms.topic,
      environment: config.name,
      targetPolicies: this.restoreTargetPolicy.policies,
      catalog,
      scopeOf,
    });
    // What the CLI's hints and docs/restore.md send operators to (aws cloudformation describe-stacks).
    outputs(this, {
      RepositoryBucket: [this.repository.bucket.bucketName, 'The repository bucket (PGSNAP_REPO=s3://<it>/)'],
      BackupStateMachineArn: [this.backup.stateMachine.stateMachineArn, 'PGSNAP_STATE_MACHINE_ARN'],
      RestoreStateMachineArn: [
        this.restore.stateMachine.stateMachine.stateMachineArn,
        'PGSNAP_RESTORE_STATE_MACHINE_ARN (pgsnap restore start)',
      ],
      AgentDocumentName: [this.document.documentName, 'The SSM document the backup state machine runs'],
      RestoreDocumentName: [
        this.restore.document.documentName,
        'The SSM document a restore runs on its target',
      ],
    });
    // cdk synth fails on any of AWS's documented limits the definition or a schedule breaks.
    this.node.addValidation(
      new AwsLimits(this, {
        parameters: agentDocumentParameters,
        // The execution name (backupId) has a fixed form, a cluster name at most 63 characters (domain/backup/input.ts).
        inputMaxLength: { '$.backupId': '20260101T030000Z-a1b2c3'.length, '$.cluster': 63 },
      }),
    );
    // ...and on a function whose environment Lambda would refuse, measured with the deployed names' lengths.
    this.node.addValidation(new LambdaEnvironmentSize(this));
    // ...and on a retention that would keep more snapshots than a Region allows.
    this.node.addValidation(new SnapshotQuota(config));
    warnNearSnapshotQuota(this, config);
    // The pin, the WAL and the artifacts never change once written (DESIGN.md); the manifests do.
    // By repository prefix past a few dozen clusters: a bucket policy holds 20 KB (guards/fleet-grants.ts).
    const inStackBucket = clusterRoots(
      config.clusters
        .filter((cluster) => !cluster.repository.bucketName)
        .map((cluster) => ({ name: cluster.name, prefix: cluster.repository.prefix })),
    );
    // Clusters found by tags too: every cluster under the discovered prefix, whatever its name.
    const discoveredRoots = discover ? [`${discover.defaults.prefix}*`] : [];
    this.repository.writeOnce([...inStackBucket, ...discoveredRoots].flatMap(writeOnceKeys));
    const hostPolicies = new Map<string, ManagedPolicy>();
    for (const shard of shards.shards) {
      const policy = new AgentHostPolicy(shard.scope, 'AgentHostPolicy', {
        environment: config.name,
        stateMachineArn,
        repositories: clustersOf(shard.clusters).map((cluster) => ({
          bucket: repositoryOf(cluster),
          prefix: cluster.repository.prefix,
          cluster: cluster.name,
        })),
        ...(this.repository.key
          ? { repositoryKey: this.repository.key, keyBucket: this.repository.bucket }
          : {}),
      });
      for (const [cluster, managed] of policy.policies) hostPolicies.set(cluster, managed);
    }
    this.hostPolicy = { policies: hostPolicies };
    this.discoveredHosts =
      discover &&
      new DiscoveredHosts(this, 'DiscoveredHosts', {
        environment: config.name,
        bucket: this.repository.bucket,
        prefix: discover.defaults.prefix,
        repositoryKey: this.repository.key,
        catalog,
      });
    if (this.discoveredHosts) {
      outputs(this, {
        DiscoveredHostInstanceProfile: [
          this.discoveredHosts.instanceProfile.instanceProfileName,
          'The instance profile to launch hosts found by tags with',
        ],
        CredentialsUrl: [this.discoveredHosts.url.url, 'PGSNAP_CREDENTIALS_URL on hosts found by tags'],
      });
    }
    const backupAge = new BackupAge(this, 'BackupAge', {
      clusters: backupAgeClusters,
      discovered: discoveredAge,
      catalog,
      topic: this.alarms.topic,
    });
    new BackupLogQueries(this, 'LogQueries', { environment: config.name, functionsUnder: this });
    // Last: its status widget shows every alarm made above.
    new PgsnapDashboard(this, 'Dashboard', {
      config,
      stateMachine: this.backup.stateMachine,
      alarmsUnder: this,
      copiesToDr: config.dr !== undefined,
      freshnessLog: backupAge.function.logGroup,
    });
    // The orchestrator records, hosts only propose (DESIGN.md "Trust"): the Lambdas made above, and no one
    // else, write the manifests and the restore records, whatever a host's or anyone's own policies say.
    this.repository.recordsWrittenOnlyBy(
      [...inStackBucket, ...discoveredRoots].flatMap(recordKeys),
      lambdaRolesOf(this),
    );
  }
}

export interface PgsnapStackProps extends StackProps {
  environment: EnvironmentConfig;
}

export class PgsnapStack extends Stack {
  readonly pgsnap: Pgsnap;

  constructor(scope: Construct, id: string, props: PgsnapStackProps) {
    const { environment, ...stackProps } = props;
    super(scope, id, {
      description: `pgsnap snapshot backups of PostgreSQL (${environment.name})`,
      ...(environment.account || environment.region
        ? { env: { account: environment.account, region: environment.region } }
        : {}),
      ...stackProps,
    });
    this.pgsnap = new Pgsnap(this, 'Pgsnap', { environment });
  }
}
