/**
 * The backup's Lambdas, with exactly the rights each step needs: check the
 * request and find the cluster, snapshot its volumes, check the snapshots,
 * delete a failed backup's snapshots, and record each stage in the manifest.
 * Built in the caller's scope (not a construct of their own), so that their
 * logical ids are those a deployed stack already has.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { snapshotTags } from '#domain/ebs/snapshots';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import type { EnvironmentConfig } from '../config/config.ts';
import { acknowledge, bucketFinding, nagArn } from '../guards/acknowledge.ts';
import { hostStatements } from '../guards/cluster-hosts.ts';
import { clusterTagCondition, grantScopes } from '../guards/fleet-grants.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import { backupMetrics } from '../monitoring/metrics-and-events.ts';

export interface BackupFunctionsProps {
  config: EnvironmentConfig;
  /** The backup state machine's name and ARN: prepare-backup reads its running executions. */
  stateMachineName: string;
  stateMachineArn: string;
  /** The repository bucket of a cluster. */
  repositoryOf: (cluster: EnvironmentConfig['clusters'][number]) => IBucket;
  /** What prepare-backup knows of the clusters. */
  catalog: ClusterCatalog;
}

export class BackupFunctions {
  readonly prepareBackup: HandlerFunction;
  readonly createSnapshots: HandlerFunction;
  readonly checkSnapshots: HandlerFunction;
  readonly deleteSnapshots: HandlerFunction;
  readonly recordBackup: HandlerFunction;

  constructor(scope: Construct, props: BackupFunctionsProps) {
    const { config, stateMachineName, stateMachineArn, repositoryOf } = props;
    const stack = Stack.of(scope);
    const prepareBackup = new HandlerFunction(scope, 'PrepareBackup', {
      handler: 'prepare-backup',
      description: 'pgsnap: checks a backup request and finds the cluster',
    });
    props.catalog.grantRead(prepareBackup);
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

    const createSnapshots = new HandlerFunction(scope, 'CreateSnapshots', {
      handler: 'create-snapshots',
      description: "pgsnap: snapshots the cluster's volumes in one CreateSnapshots call",
    });
    const clusterNames = config.clusters.map((c) => c.name);
    // Found by tags, a cluster's name is known only when its backup starts: any name, on a tagged host's volumes.
    const ofClusters = (key: string) =>
      config.discover
        ? { StringLike: { [`${key}/${snapshotTags.cluster}`]: '?*' } }
        : clusterTagCondition(`${key}/${snapshotTags.cluster}`, clusterNames);
    for (const statement of hostStatements(
      scope,
      config.clusters,
      ['ec2:CreateSnapshots'],
      'aws:ResourceTag',
      config.discover?.tag,
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
        conditions: ofClusters('aws:RequestTag'),
      }),
    );
    createSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:CreateTags'],
        resources: [snapshotArn],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshots' } },
      }),
    );

    const snapshotWildcard = `AwsSolutions-IAM5[Resource::${nagArn(scope, 'ec2', 'snapshot/*', { account: false })}]`;
    acknowledge(createSnapshots, {
      [snapshotWildcard]:
        'snapshot ids are not known before they exist; creating and tagging is allowed only for snapshots ' +
        'tagged with a configured cluster (aws:RequestTag) and only as part of CreateSnapshots (ec2:CreateAction)',
      [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'ec2', 'volume/*')}]`]:
        'CreateSnapshots needs the volumes of the instance; the instance permission limits which volumes those are',
      [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'ec2', 'instance/*')}]`]:
        'a cluster selected by tags may be snapshotted only on instances carrying exactly those tags (condition)',
    });

    const checkSnapshots = new HandlerFunction(scope, 'CheckSnapshots', {
      handler: 'check-snapshots',
      description: 'pgsnap: checks whether the snapshots of a backup are completed',
      environment: {
        PGSNAP_FIRST_POLL_SECONDS: String(config.timeouts.firstPollSeconds),
        PGSNAP_MAX_POLL_SECONDS: String(config.timeouts.maxPollSeconds),
        PGSNAP_SNAPSHOT_HOURS: String(config.timeouts.snapshotHours),
      },
    });

    const deleteSnapshots = new HandlerFunction(scope, 'DeleteSnapshots', {
      handler: 'delete-snapshots',
      description: "pgsnap: deletes a failed backup's snapshots, found by their tags",
      timeout: Duration.minutes(2),
    });
    deleteSnapshots.addToRolePolicy(
      new PolicyStatement({
        actions: ['ec2:DeleteSnapshot'],
        resources: [snapshotArn],
        conditions: ofClusters('aws:ResourceTag'),
      }),
    );

    acknowledge(deleteSnapshots, {
      [snapshotWildcard]:
        'deletion is allowed only for snapshots tagged with a configured cluster (aws:ResourceTag)',
    });
    acknowledge(prepareBackup, {
      [`AwsSolutions-IAM5[Resource::${nagArn(scope, 'states', `execution:${stateMachineName}:*`)}]`]:
        "reads the input of scope state machine's own running executions, to find a running backup of the same cluster",
    });

    const recordBackup = new HandlerFunction(scope, 'RecordBackup', {
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
      if (config.discover) {
        const backups = `${config.discover.defaults.prefix}*/backups/*`;
        props.catalog.bucket.grantReadWrite(fn, backups);
        acknowledge(fn, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(props.catalog.bucket)}/${backups}]`]:
            'reads and rewrites the manifests of the backups of clusters found by tags, whose names are known only at run time',
        });
      }
      const scopes = grantScopes(config.clusters, (cluster) => ({
        name: cluster.name,
        bucket: repositoryOf(cluster),
        prefix: cluster.repository.prefix,
      }));
      for (const { bucket, root, whose } of scopes) {
        const backups = `${root}/backups/*`;
        bucket.grantReadWrite(fn, backups);
        // Checking what the host proposed: the pin's system identifier and the WAL from start to stop.
        bucket.grantRead(fn, `${root}/cluster.json`);
        bucket.grantRead(fn, `${root}/wal/*`);
        acknowledge(fn, {
          [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/wal/*]`]: `reads ${whose} WAL to check a backup's range is archived`,
          [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${backups}]`]: `reads and rewrites the manifests of ${whose} backups, under their prefix only`,
          ...(root.endsWith('*')
            ? {
                [`AwsSolutions-IAM5[Resource::${bucketFinding(bucket)}/${root}/cluster.json]`]: `reads ${whose} pins, to check a backup's system identifier`,
              }
            : {}),
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

    this.prepareBackup = prepareBackup;
    this.createSnapshots = createSnapshots;
    this.checkSnapshots = checkSnapshots;
    this.deleteSnapshots = deleteSnapshots;
    this.recordBackup = recordBackup;
  }
}
