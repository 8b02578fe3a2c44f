/**
 * The CDK app synthesized for a run on one machine (`pgsnap demo`): the backup
 * state machine's definition as Step Functions would run it, and the agent's
 * SSM document as SSM would run it, both read from the synthesized template,
 * so that the local run executes exactly what a deployment would.
 */
import { App } from 'aws-cdk-lib';
import type { EnvironmentInput } from '../config/config.ts';
import { environmentSchema } from '../config/config.ts';
import { PgsnapStack } from '../pgsnap-stack.ts';

export type Asl = Record<string, unknown> & {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
};

export interface AgentDocumentContent {
  parameters: Record<
    string,
    { default?: string; allowedValues?: readonly string[]; allowedPattern?: string }
  >;
  /** The runShellScript lines. */
  runCommand: string[];
}

export interface SynthesizedForLocalRun {
  definition: Asl;
  agentDocument: AgentDocumentContent;
  /** The restore state machine and its SSM document. */
  restoreDefinition: Asl;
  restoreDocument: AgentDocumentContent;
}

type Template = { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
type Fragment = string | { Ref: string } | { 'Fn::GetAtt': [string, string] } | Record<string, unknown>;

function onlyResource(
  template: Template,
  type: string,
  which: (properties: Record<string, unknown>) => boolean = () => true,
): Record<string, unknown> {
  const found = Object.values(template.Resources).filter(
    (resource) => resource.Type === type && which(resource.Properties),
  );
  if (found.length !== 1) throw new Error(`expected one such ${type} in the template, found ${found.length}`);
  return found[0]!.Properties;
}

/** The backup's or the restore's: told apart by the name, `pgsnap-<env>-backup` or `-restore`. */
const named = (kind: 'backup' | 'restore') => (properties: Record<string, unknown>) =>
  String(properties.StateMachineName ?? '').endsWith(`-${kind}`);
/** The agent's documents: told apart by what their description says they run. */
const described = (kind: 'backup' | 'restore') => (properties: Record<string, unknown>) =>
  String((properties.Content as { description?: string }).description).includes(`for a ${kind}`);

/**
 * The state machine's ASL, with references to other resources (Lambda
 * functions, the SSM document, the bus) replaced by readable placeholder ARNs
 * in the stack's account and region.
 */
export function stateMachineDefinition(
  template: Template,
  account = '111122223333',
  region = 'eu-west-1',
  kind: 'backup' | 'restore' = 'backup',
): Asl {
  const definition = onlyResource(template, 'AWS::StepFunctions::StateMachine', named(kind))
    .DefinitionString as { 'Fn::Join': [string, Fragment[]] } | string;
  if (typeof definition === 'string') return JSON.parse(definition);
  const text = definition['Fn::Join'][1]
    .map((part) => {
      if (typeof part === 'string') return part;
      if ('Ref' in part) return part.Ref === 'AWS::Partition' ? 'aws' : `ref-${String(part.Ref)}`;
      if ('Fn::GetAtt' in part) {
        const [name] = part['Fn::GetAtt'] as [string, string];
        return `arn:aws:lambda:${region}:${account}:function:${name}`;
      }
      throw new Error(`unexpected fragment in the definition: ${JSON.stringify(part)}`);
    })
    .join('');
  return JSON.parse(text);
}

/** The agent's SSM document: its parameters and its script. */
export function agentDocumentContent(
  template: Template,
  kind: 'backup' | 'restore' = 'backup',
): AgentDocumentContent {
  const content = onlyResource(template, 'AWS::SSM::Document', described(kind)).Content as {
    parameters: AgentDocumentContent['parameters'];
    mainSteps: Array<{ inputs: { runCommand: string[] } }>;
  };
  if (content.mainSteps.length !== 1) throw new Error('expected the agent document to have one step');
  return { parameters: content.parameters, runCommand: content.mainSteps[0]!.inputs.runCommand };
}

/** Synthesizes `environment` into `outdir` (which the caller removes) without bundling the Lambdas. */
export function synthesizeForLocalRun(environment: EnvironmentInput, outdir: string): SynthesizedForLocalRun {
  const app = new App({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new PgsnapStack(app, `pgsnap-${environment.name}`, {
    environment: environmentSchema.parse(environment),
  });
  const template = app.synth().getStackByName(stack.stackName).template as Template;
  return {
    definition: stateMachineDefinition(template, environment.account, environment.region),
    agentDocument: agentDocumentContent(template),
    restoreDefinition: stateMachineDefinition(template, environment.account, environment.region, 'restore'),
    restoreDocument: agentDocumentContent(template, 'restore'),
  };
}
