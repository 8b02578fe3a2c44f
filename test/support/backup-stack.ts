/**
 * The pgsnap stack as the tests see it: synthesized without bundling the
 * Lambdas, and the state machine's definition extracted from the template as
 * the ASL that Step Functions would run.
 */
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { EnvironmentInput } from '../../infra/config.ts';
import { environmentSchema } from '../../infra/config.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';

/** Two clusters: one host named by instance id, one selected by tags. */
export const testEnvironment: EnvironmentInput = {
  name: 'test',
  account: '111122223333',
  region: 'eu-west-1',
  clusters: [
    {
      name: 'orders-db',
      instance: { instanceId: 'i-0123456789abcdef0' },
      volumeIds: ['vol-0a1b2c3d4e5f60001', 'vol-0a1b2c3d4e5f60002'],
      repository: { prefix: 'pgsnap/' },
      schedules: [
        { name: 'nightly', expression: 'cron(0 3 * * ? *)', label: 'nightly' },
        { name: 'hourly', expression: 'rate(1 hour)' },
      ],
      fastCheckpoint: true,
      rpoHours: 26,
    },
    { name: 'billing-db', instance: { tags: { 'pgsnap:cluster': 'billing-db', role: 'primary' } } },
  ],
  notifications: { emails: ['dba@example.com'], onSuccess: true },
};

export interface SynthesizedStack {
  app: App;
  stack: PgsnapStack;
  template: Template;
}

export function synthStack(
  environment: EnvironmentInput = testEnvironment,
  options: { nag?: boolean; outdir?: string } = {},
): SynthesizedStack {
  const app = new App({
    context: { 'aws:cdk:bundling-stacks': [] },
    ...(options.outdir ? { outdir: options.outdir } : {}),
  });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new PgsnapStack(app, `pgsnap-${environment.name}`, {
    environment: environmentSchema.parse(environment),
  });
  return { app, stack, template: Template.fromStack(stack) };
}

type Fragment = string | { Ref: string } | { 'Fn::GetAtt': [string, string] } | Record<string, unknown>;

/** The state machine's ASL, with references to other resources replaced by readable fake ARNs. */
export function stateMachineDefinition(template: Template): Record<string, unknown> & {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
} {
  const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const definition = machines[0]!.Properties.DefinitionString as
    | { 'Fn::Join': [string, Fragment[]] }
    | string;
  if (typeof definition === 'string') return JSON.parse(definition);
  const text = definition['Fn::Join'][1]
    .map((part) => {
      if (typeof part === 'string') return part;
      if ('Ref' in part) return part.Ref === 'AWS::Partition' ? 'aws' : `ref-${String(part.Ref)}`;
      if ('Fn::GetAtt' in part) {
        const [name] = part['Fn::GetAtt'] as [string, string];
        return `arn:aws:lambda:eu-west-1:111122223333:function:${name}`;
      }
      throw new Error(`unexpected fragment in the definition: ${JSON.stringify(part)}`);
    })
    .join('');
  return JSON.parse(text);
}
