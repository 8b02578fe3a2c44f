/**
 * The state machines' definitions (ASL) as they are deployed, compared byte for
 * byte with the committed files in __snapshots__: a change to a step, a state
 * name, a retry or a catch shows up there, so it is made on purpose
 * (`npx vitest run --project infra -u` rewrites the files; review the diff).
 * References to other resources (Lambdas, the SSM document) read as fake ARNs
 * named by their logical ids, so a moved Lambda shows too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, test } from 'vitest';
import { type EnvironmentInput, environmentSchema } from '../../infra/config/config.ts';
import { DrStack } from '../../infra/dr-stack.ts';
import { stateMachineDefinition } from '../../infra/local-run/synthesize.ts';
import { PgsnapStack } from '../../infra/pgsnap-stack.ts';
import { testEnvironment } from '../support/backup-stack.ts';

/** One cluster copied to DR in another account, with retention on both sides. */
const withDr: EnvironmentInput = {
  name: 'prod',
  account: '111122223333',
  region: 'eu-west-1',
  clusters: [
    {
      name: 'orders-db',
      instance: { instanceId: 'i-0123456789abcdef0' },
      volumeIds: ['vol-0a1b2c3d4e5f60001'],
      repository: { prefix: 'pgsnap/' },
      retention: { keepLast: 7, dr: { keepDays: 35 } },
    },
  ],
  dr: {
    account: '444455556666',
    region: 'us-west-2',
    externalId: 'pgsnap-prod-7f3a9c2e',
    objectLock: { mode: 'COMPLIANCE', days: 30 },
  },
};

type TemplateJson = Parameters<typeof stateMachineDefinition>[0];

function synthesize(environment: EnvironmentInput): { source: TemplateJson; dr?: TemplateJson } {
  const outdir = mkdtempSync(join(tmpdir(), 'pgsnap-cdk-'));
  try {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] }, outdir });
    const parsed = environmentSchema.parse(environment);
    const source = new PgsnapStack(app, `pgsnap-${parsed.name}`, { environment: parsed });
    const dr = parsed.dr ? new DrStack(app, `pgsnap-${parsed.name}-dr`, { environment: parsed }) : undefined;
    return {
      source: Template.fromStack(source).toJSON() as TemplateJson,
      ...(dr ? { dr: Template.fromStack(dr).toJSON() as TemplateJson } : {}),
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

const asl = (template: TemplateJson, kind: 'backup' | 'restore', account: string, region: string) =>
  `${JSON.stringify(stateMachineDefinition(template, account, region, kind), null, 2)}\n`;

describe('the synthesized state machine definitions are the committed ones', () => {
  const plain = synthesize(testEnvironment);
  const dr = synthesize(withDr);

  test('the backup state machine', async () => {
    await expect(asl(plain.source, 'backup', '111122223333', 'eu-west-1')).toMatchFileSnapshot(
      '__snapshots__/backup.asl.json',
    );
  });

  test('the restore state machine', async () => {
    await expect(asl(plain.source, 'restore', '111122223333', 'eu-west-1')).toMatchFileSnapshot(
      '__snapshots__/restore.asl.json',
    );
  });

  test('the backup state machine with DR copies and retention', async () => {
    await expect(asl(dr.source, 'backup', '111122223333', 'eu-west-1')).toMatchFileSnapshot(
      '__snapshots__/backup-with-dr.asl.json',
    );
  });

  test("the DR stack's restore state machine", async () => {
    await expect(asl(dr.dr!, 'restore', '444455556666', 'us-west-2')).toMatchFileSnapshot(
      '__snapshots__/dr-restore.asl.json',
    );
  });
});
