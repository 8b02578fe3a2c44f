import { build } from 'esbuild';
import { expect, test } from 'vitest';
import { lambdaBundling } from '../../infra/lambda/handler-function.ts';

test('the Lambdas carry the pinned AWS SDK, not the runtime’s (LockSnapshot, IfNoneMatch)', async () => {
  expect(lambdaBundling.externalModules.some((m) => m.startsWith('@aws-sdk'))).toBe(false);
  const result = await build({
    entryPoints: ['functions/record-copies.ts'],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: lambdaBundling.target,
    external: lambdaBundling.externalModules,
    banner: { js: lambdaBundling.banner },
    logLevel: 'silent',
  });
  const text = result.outputFiles[0]!.text;
  expect(text).not.toMatch(/from\s*"@aws-sdk\//);
  // The command's own definition is in the bundle, not an import the runtime must satisfy.
  expect(text).toContain('"LockSnapshot"');
}, 60_000);
