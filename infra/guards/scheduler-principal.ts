/**
 * EventBridge Scheduler as the principal of a schedule's role, for this
 * account's schedules only: "we recommend that you use the aws:SourceAccount
 * … global condition context key … to protect against the confused deputy
 * problem" (EventBridge Scheduler user guide, *Setting up the execution role*).
 */
import { Stack } from 'aws-cdk-lib';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

export function schedulerPrincipal(scope: IConstruct): ServicePrincipal {
  return new ServicePrincipal('scheduler.amazonaws.com', {
    conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(scope).account } },
  });
}
