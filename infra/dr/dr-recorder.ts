/**
 * DR owns DR (DESIGN.md, "Trust"): the DR stack's recorder writes each DR-side
 * manifest from DR facts (functions/record-dr-backup.ts), called by an
 * EventBridge rule of the DR account and Region whenever EBS ends a snapshot
 * copy there, and every six hours to sweep: EventBridge may lose an event, and
 * a lost last one would leave a DR backup unrecorded. It reads the copied cluster's objects and writes its manifests,
 * nothing else; the source's principals may write no manifest in the DR
 * bucket (the DR stack's bucket policy).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { ClusterCatalog } from '../config/cluster-catalog.ts';
import { acknowledge, bucketFinding } from '../guards/acknowledge.ts';
import { grantScopes } from '../guards/fleet-grants.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';

export interface DrRecorderProps {
  bucket: IBucket;
  /** The copied clusters: name and repository prefix. */
  clusters: Array<{ name: string; prefix: string }>;
  /** The DR stack's catalog, which names each copied cluster's DR repository. */
  catalog: ClusterCatalog;
}

export class DrRecorder extends Construct {
  readonly function: HandlerFunction;

  constructor(scope: Construct, id: string, props: DrRecorderProps) {
    super(scope, id);
    const fn = new HandlerFunction(this, 'RecordDrBackup', {
      handler: 'record-dr-backup',
      description: "pgsnap: records a backup's DR manifest from the DR copies EC2 shows",
      // A sweep reads every copied cluster's recent backups: a listing and a read or two each.
      timeout: Duration.minutes(5),
      environment: { PGSNAP_DR_ACCOUNT: Stack.of(this).account },
    });
    this.function = fn;
    // Each copied cluster's DR repository is in the DR catalog, not the environment (4 KB: about 40 clusters).
    props.catalog.grantRead(fn);
    // DescribeSnapshots supports no resource-level permissions.
    fn.addToRolePolicy(new PolicyStatement({ actions: ['ec2:DescribeSnapshots'], resources: ['*'] }));
    const scopes = grantScopes(props.clusters, (c) => ({
      name: c.name,
      bucket: props.bucket,
      prefix: c.prefix,
    }));
    for (const { root, whose } of scopes) {
      // The pin, the proposal and the artifacts read; the manifests, and nothing else, written.
      props.bucket.grantRead(fn, `${root}/*`);
      props.bucket.grantPut(fn, `${root}/backups/*/manifest.json`);
      acknowledge(fn, {
        [`AwsSolutions-IAM5[Resource::${bucketFinding(props.bucket)}/${root}/*]`]: `reads ${whose} DR pins, proposals and artifacts, under their prefix only`,
        [`AwsSolutions-IAM5[Resource::${bucketFinding(props.bucket)}/${root}/backups/*/manifest.json]`]: `writes ${whose} DR manifests, and no other object`,
      });
    }
    acknowledge(fn, {
      'AwsSolutions-IAM5[Resource::*]': 'ec2:DescribeSnapshots supports no resource-level permissions',
      'AwsSolutions-IAM5[Action::s3:GetObject*]': 'CDK grantRead: reads of the copied clusters’ objects',
      'AwsSolutions-IAM5[Action::s3:GetBucket*]': 'CDK grantRead: bucket location and settings, read only',
      'AwsSolutions-IAM5[Action::s3:List*]': 'CDK grantRead: listing the catalog',
      'AwsSolutions-IAM5[Action::s3:Abort*]': 'CDK grantPut: aborting its own multipart uploads',
      'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]': 'CDK key grant on the DR key, for SSE-KMS objects',
      'AwsSolutions-IAM5[Action::kms:ReEncrypt*]': 'CDK key grant on the DR key, for SSE-KMS objects',
    });
    // "EBS Snapshot Notification" with event copySnapshot, sent in the Region of the copy (EBS user guide,
    // "Amazon EventBridge for Amazon EBS"). EventBridge invokes asynchronously, so a failed call is retried by
    // Lambda (twice, a minute and then two later): a copy's event can come before the source's proposal,
    // which the recorder then refuses to do without.
    fn.configureAsyncInvoke({ retryAttempts: 2, maxEventAge: Duration.hours(1) });
    new Rule(this, 'CopyEnded', {
      description: 'pgsnap: a snapshot copy ended in the DR Region; record its backup in DR',
      eventPattern: {
        source: ['aws.ec2'],
        detailType: ['EBS Snapshot Notification'],
        detail: { event: ['copySnapshot'] },
      },
      targets: [new LambdaFunction(fn, { retryAttempts: 8, maxEventAge: Duration.hours(6) })],
    });
    // The sweep looks back 48 hours (functions/record-dr-backup.ts), so each backup is looked at eight times.
    new Rule(this, 'Sweep', {
      description: 'pgsnap: record again the recent DR backups a lost copy event left unrecorded',
      schedule: Schedule.rate(Duration.hours(6)),
      targets: [
        new LambdaFunction(fn, { event: RuleTargetInput.fromObject({ sweep: true }), retryAttempts: 2 }),
      ],
    });
  }
}
