/**
 * The SNS topic alarms and failure events notify, encrypted with its own key
 * that EventBridge and CloudWatch may use, HTTPS only, with the configured
 * email subscriptions. The source stack makes one (BackupAlarms), the DR
 * stack its own in the DR account and region (an alarm notifies only a topic
 * of its own Region).
 */
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';

/** The topic (`Topic`) and its key (`Key`), made in `scope`. */
export function alarmTopic(scope: Construct, props: { displayName: string; emails: string[] }): Topic {
  const key = new Key(scope, 'Key', { description: 'pgsnap notifications', enableKeyRotation: true });
  for (const service of ['events.amazonaws.com', 'cloudwatch.amazonaws.com']) {
    key.grant(new ServicePrincipal(service), 'kms:Decrypt', 'kms:GenerateDataKey*');
  }
  const topic = new Topic(scope, 'Topic', {
    displayName: props.displayName,
    masterKey: key,
    enforceSSL: true,
  });
  for (const email of props.emails) topic.addSubscription(new EmailSubscription(email));
  return topic;
}
