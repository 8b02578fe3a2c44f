/**
 * The pgsnap stack as the tests see it: synthesized without bundling the
 * Lambdas, and the state machine's definition extracted from the template as
 * the ASL that Step Functions would run.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { EnvironmentInput } from '../../infra/config/config.ts';
import { environmentSchema } from '../../infra/config/config.ts';
import { type Asl, stateMachineDefinition as definitionOf } from '../../infra/local-run/synthesize.ts';
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
  options: { nag?: boolean; outdir?: string; deferSynth?: boolean } = {},
): SynthesizedStack {
  // Synthesized into a directory of its own, removed here unless the caller chose it.
  const outdir = options.outdir ?? mkdtempSync(join(tmpdir(), 'pgsnap-cdk-'));
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const stack = new PgsnapStack(app, `pgsnap-${environment.name}`, {
    environment: environmentSchema.parse(environment),
  });
  // deferSynth: the caller changes the stack, then synthesizes `app` itself (template is not read).
  if (options.deferSynth) return { app, stack, template: undefined as never };
  try {
    return { app, stack, template: Template.fromStack(stack) };
  } finally {
    if (!options.outdir) rmSync(outdir, { recursive: true, force: true });
  }
}

/** The state machine's ASL, with references to other resources replaced by readable fake ARNs. */
export function stateMachineDefinition(template: Template): Asl {
  return definitionOf(template.toJSON() as Parameters<typeof definitionOf>[0]);
}

/** A catalog's report-backup-age list (infra/monitoring/backup-age.ts `freshnessOf`). */
export interface CatalogFreshness {
  defaults: Record<string, unknown>;
  clusters: Array<Record<string, unknown>>;
}

/**
 * The catalog's JSON as a template's Custom::PgsnapCatalog carries it (gzipped in base64, deploy-time values as
 * markers: infra/config/cluster-catalog.ts), each reference to another resource (the bucket's name) as
 * `<LogicalId>`.
 */
export function catalogText(properties: { Body: string; Substitutions?: Record<string, unknown> }): string {
  let text = gunzipSync(Buffer.from(properties.Body, 'base64')).toString('utf8');
  for (const [marker, value] of Object.entries(properties.Substitutions ?? {})) {
    const ref = (value as { Ref?: string }).Ref;
    text = text.replaceAll(marker, typeof value === 'string' ? value : `<${ref ?? 'ref'}>`);
  }
  return text;
}

/**
 * The catalog a template writes (its Custom::PgsnapCatalog's body) as JSON, each reference to another
 * resource (the bucket's name) as `<LogicalId>`.
 */
export function catalogOf(template: Template): {
  clusters: Array<Record<string, unknown>>;
  freshness?: CatalogFreshness;
} {
  const catalogs = Object.values(template.findResources('Custom::PgsnapCatalog'));
  if (catalogs.length !== 1) throw new Error(`${catalogs.length} catalogs in the template`);
  const text = catalogText(catalogs[0]!.Properties);
  return JSON.parse(text);
}
