/**
 * What follows a completed backup, on the source account's side: the DR copy
 * (its Lambdas, running as the copier of dr/dr-copier.ts) and source
 * retention (retention/), their steps in the state machine, their rights on
 * the repository, and the alarms on failed copies. Retention here is the
 * source's only: the DR copies are retained by the DR stack, in the DR
 * account, and the copier may create, tag and lock there but never delete.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { State, StateMachine, Succeed } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { EnvironmentConfig } from '../config/config.ts';
import { CopyBudget, clustersTooBigForCopies } from '../dr/copy-budget.ts';
import { drNames } from '../dr/dr-config.ts';
import { drCopier } from '../dr/dr-copier.ts';
import { DrCopySteps } from '../dr/dr-copy-steps.ts';
import { acknowledge, arnReference, bucketFinding, nagArn, wildcardReasons } from '../guards/acknowledge.ts';
import { grantScopes } from '../guards/fleet-grants.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { copyFailedNotices, copyLagAlarm } from '../monitoring/copy-alarms.ts';
import { RetentionSteps } from '../retention/retention-steps.ts';
import { Retention } from '../retention/scheduled-retention.ts';

/** The functions of the steps after a completed backup; each only where the configuration has it. */
export interface AfterBackupFunctions {
  copySnapshots?: IFunction;
  checkCopies?: IFunction;
  recordCopies?: IFunction;
  acquireCopyBudget?: IFunction;
  releaseCopyBudget?: IFunction;
  applyRetention?: IFunction;
}

export interface AfterBackupProps {
  config: EnvironmentConfig;
  /** The repository bucket of a cluster, and its URL (as the agent uses it). */
  repositoryOf: (cluster: EnvironmentConfig['clusters'][number]) => { bucket: IBucket; url: string };
  /** The budget table (infra/backup/snapshot-budget.ts): the DR copy budget is an item in it. */
  budgetTable: ITable;
  /** The cluster catalog: the copy functions read each copied cluster's DR repository there, retention policies. */
  catalog: ClusterCatalog;
  /** The bucket of the clusters found by tags (the stack's repository bucket). */
  discoveredBucket?: IBucket;
}

export class AfterBackup extends Construct {
  readonly functions: AfterBackupFunctions = {};
  readonly retention: Retention | undefined;

  constructor(scope: Construct, id: string, props: AfterBackupProps) {
    super(scope, id);
    const { config } = props;
    const stack = Stack.of(this);
    const dr = config.dr;
    const copied = dr ? config.clusters.filter((c) => c.copyToDr) : [];
    const retained = config.clusters.filter((c) => c.retention);
    if (copied.length === 0 && retained.length === 0 && !config.discover?.defaults.retention) return;

    const copier = dr && copied.length > 0 ? drCopier(this, config, dr, copied) : undefined;
    const role = copier?.role;
    const target = copier?.target;

    const environment = {
      ...(target ? { PGSNAP_DR: stack.toJsonString(target) } : {}),
      PGSNAP_FIRST_POLL_SECONDS: String(config.timeouts.firstPollSeconds),
      PGSNAP_MAX_POLL_SECONDS: String(config.timeouts.maxPollSeconds),
      PGSNAP_COPY_HOURS: String(dr?.copyHours ?? 24),
    };
    const fn = (id: string, handler: string, description: string, timeout = Duration.minutes(2)) =>
      new HandlerFunction(this, id, {
        handler,
        description,
        environment,
        timeout,
        ...(role ? { role } : {}),
      });
    if (target) {
      this.functions.copySnapshots = fn(
        'CopySnapshots',
        'copy-snapshots',
        'pgsnap: starts the DR copies of a backup',
        Duration.minutes(5),
      );
      this.functions.checkCopies = fn(
        'CheckCopies',
        'check-copies',
        'pgsnap: checks whether the DR copies are completed',
      );
      this.functions.recordCopies = fn(
        'RecordCopies',
        'record-copies',
        'pgsnap: records how the DR copies ended',
        Duration.minutes(5),
      );
      const tooBig = clustersTooBigForCopies(config);
      if (tooBig.length > 0) {
        throw new Error(
          `the DR copies of ${tooBig.join(', ')} would need more shares than the whole copy budget; ` +
            'raise budgets.copies (at most 20) or copy fewer volumes',
        );
      }
      const budget = new CopyBudget(this, {
        config,
        table: props.budgetTable,
        destination: { account: target.account, region: target.region },
        environment,
      });
      this.functions.acquireCopyBudget = budget.acquire;
      this.functions.releaseCopyBudget = budget.release;
      for (const reader of [
        this.functions.copySnapshots,
        this.functions.checkCopies,
        this.functions.recordCopies,
        budget.acquire,
      ]) {
        props.catalog.grantRead(reader as HandlerFunction);
      }
    }
    const discoveredRetention = config.discover?.defaults.retention;
    if (retained.length > 0 || discoveredRetention) {
      this.retention = new Retention(this, 'Retention', {
        side: 'source',
        catalog: props.catalog,
        clusters: retained.map((c) => ({
          name: c.name,
          schedule: c.retention!.schedule,
          flexibleWindowMinutes: c.retention!.flexibleWindowMinutes,
          bucket: props.repositoryOf(c).bucket,
          prefix: c.repository.prefix,
        })),
        discovered: discoveredRetention && {
          schedule: discoveredRetention.schedule,
          flexibleWindowMinutes: discoveredRetention.flexibleWindowMinutes,
          bucket: props.discoveredBucket!,
          prefix: config.discover!.defaults.prefix,
        },
      });
      this.functions.applyRetention = this.retention.function;
    }

    // Source repository: copy reads the backup and record rewrites the manifest (retention's rights are
    // its own, infra/retention/scheduled-retention.ts).
    const all = Object.values(this.functions);
    const { acquireCopyBudget, releaseCopyBudget } = this.functions;
    const copiers = all.filter(
      (f) => f !== this.functions.applyRetention && f !== acquireCopyBudget && f !== releaseCopyBudget,
    );
    const scopes = grantScopes(config.clusters, (cluster) => ({
      name: cluster.name,
      bucket: props.repositoryOf(cluster).bucket,
      prefix: cluster.repository.prefix,
    }));
    for (const { bucket, root, whose } of scopes) {
      const prefix = `${root}/*`;
      for (const f of copiers) {
        bucket.grantRead(f, prefix);
        bucket.grantPut(f, prefix);
        acknowledge(role ?? f, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${prefix}]`]: `reads ${whose} backups and rewrites their manifests, under their prefix only`,
        });
      }
    }
    const grantReasons = {
      'AwsSolutions-IAM5[Action::s3:GetObject*]':
        'CDK grantRead: object reads, limited to the cluster prefixes',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]':
        'CDK grantRead: listing the catalog to find what is already copied',
      'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantPut: aborting its own multipart uploads',
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]':
        'CDK key grant for the repository key, needed for SSE-KMS objects',
      'AwsSolutions-IAM5[Resource::*]': `${wildcardReasons.xray}; so does ec2:DescribeSnapshots, which only reads`,
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'ec2', 'snapshot/*', { account: false })}]`]:
        'snapshot ids are not known in advance; sharing and deleting are allowed only for snapshots tagged with a configured cluster',
      [`AwsSolutions-IAM5[Resource::${nagArn(this, 'kms', 'key/*')}]`]:
        'the volumes may be encrypted with any key of the account; grants are limited to the DR role and the operations a copy needs',
    };
    for (const f of all) acknowledge(f, grantReasons);
    if (role) {
      acknowledge(role, {
        ...grantReasons,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
          "AWSLambdaBasicExecutionRole only lets the functions write their own log streams; it is AWS's maintained minimum",
        ...(dr && target && !target.roleArn
          ? {
              [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${target.region}::snapshot/*]`]:
                'copy ids are not known in advance; copies are made and tagged only with a configured cluster tag',
              [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:${target.region}:${target.account}:key/*]`]:
                "the DR key's id is not known to the source stack; only the key with the DR alias, and only through EBS and S3",
              ...Object.fromEntries(
                grantScopes(copied, (c) => ({
                  name: c.name,
                  bucket: props.repositoryOf(c).bucket,
                  prefix: c.repository.prefix,
                })).map(({ root, whose }) => [
                  `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${drNames(config, dr).bucketName}/${root}${root.endsWith('*') ? '' : '/*'}]`,
                  `the DR artifacts and manifests of ${whose} backups, under their prefix only`,
                ]),
              ),
            }
          : {}),
      });
    }
  }

  /**
   * Builds the steps in `scope` (the state machine's construct), ending in `done`: the DR copy, then
   * retention, each only where the configuration has its functions; returns the first one.
   */
  steps(scope: Construct, done: Succeed): State {
    const { copySnapshots, checkCopies, recordCopies, acquireCopyBudget, releaseCopyBudget, applyRetention } =
      this.functions;
    const retention = applyRetention
      ? new RetentionSteps(scope, 'Retention', { applyRetention, next: done }).startState
      : done;
    if (!(copySnapshots && checkCopies && recordCopies && acquireCopyBudget && releaseCopyBudget))
      return retention;
    return new DrCopySteps(scope, 'DrCopy', {
      functions: { copySnapshots, checkCopies, recordCopies, acquireCopyBudget, releaseCopyBudget },
      next: retention,
    }).startState;
  }

  /** Acknowledges on the state machine what invoking these functions adds; adds the failed-copy alarm. */
  attach(stateMachine: StateMachine, topic: ITopic): void {
    acknowledge(stateMachine, {
      ...Object.fromEntries(
        Object.values(this.functions).map((fn) => [
          `AwsSolutions-IAM5[Resource::${arnReference(fn)}:*]`,
          wildcardReasons.lambdaVersions,
        ]),
      ),
    });
    this.retention?.failedAlarm.addAlarmAction(new SnsAction(topic));
    if (!this.functions.copySnapshots) return;
    copyFailedNotices(this, topic);
    copyLagAlarm(this, topic);
  }
}
