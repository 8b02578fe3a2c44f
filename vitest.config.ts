import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    execArgv: ['--openssl-legacy-provider'],
    globalSetup: ['test/support/global-setup.ts'],
    projects: [
      {
        extends: true,
        // Projects with different maxWorkers need groups of their own (vitest 4); unit tests run first.
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          // Two cores: more parallel clusters only make every test slower.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        // The hostile-host suite: the real agent as root against real PostgreSQL, mounts and loop devices.
        test: {
          name: 'security',
          include: ['test/security/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
      {
        extends: true,
        // Synthesizing the CDK app takes seconds per test file; the Lambdas are not bundled.
        test: {
          name: 'infra',
          include: ['test/infra/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // aws-local-stepfunctions uses Promise.withResolvers, which Node 20 lacks.
          setupFiles: ['local/promise-with-resolvers.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        // The CLI test files again, run against the single executable that is shipped (test/support/pgsnap.ts
        // runs PGSNAP_TEST_BIN when it is set), built once by its own global setup.
        test: {
          name: 'executable',
          include: ['test/e2e/*-cli.test.ts'],
          globalSetup: ['test/support/global-setup.ts', 'test/support/executable-setup.ts'],
          env: { PGSNAP_TEST_BIN: 'dist/pgsnap-linux-x64' },
          setupFiles: ['local/promise-with-resolvers.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
