/**
 * Repositories for tests, one per test: a directory the server user owns, or
 * a prefix on a local S3 server; and the archive_command / restore_command
 * that point PostgreSQL at them. The server runs these commands without our
 * environment, so everything they need is in the command line.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRepository } from '#domain/repository/open';
import type { Repository } from '#domain/repository/repository';
import { systemIdentifierOf } from '../../agent/postgres/pgdata.ts';
import { archiveCommandLine, restoreCommandLine } from '../../agent/wal/shell-lines.ts';
import { ownedDir } from './cluster.ts';
import { pgsnapBin } from './pgsnap.ts';
import type { LocalS3 } from './s3.ts';

export type BackendKind = 'file' | 's3';

export interface TestRepository {
  kind: BackendKind;
  url: string;
  cluster: string;
  /** Environment for pgsnap run by the test (credentials for the local S3 server). */
  env: Record<string, string>;
  /** archive_command, quoted for postgresql.conf. */
  archiveCommand(extra?: string): string;
  /** restore_command, quoted for postgresql.conf. */
  restoreCommand(extra?: string): string;
  /** restore_command unquoted, for prepareDataDirectory. */
  restoreCommandLine(extra?: string): string;
  /**
   * archive_command (unquoted) for wal-push --async with the shell fast path, as
   * `wal-push --print-command --async` writes it; `pgsnap` replaces how pgsnap is started.
   */
  asyncArchiveCommandLine(options: {
    spoolRoot: string;
    pgdata: string;
    parallel?: number;
    pgsnap?: string[];
  }): string;
  /** restore_command (unquoted) for wal-fetch --prefetch with the shell fast path. */
  prefetchRestoreCommandLine(options: { spool: string; prefetch?: number; pgsnap?: string[] }): string;
  /** pgsnap's flags for this repository, for commands the test runs. */
  flags: string[];
  open(): Promise<Repository>;
  destroy(): void;
}

let counter = 0;

export function testRepository(kind: BackendKind, s3?: LocalS3, cluster = 'orders-db'): TestRepository {
  counter += 1;
  let url: string;
  let dir: string | undefined;
  if (kind === 'file') {
    dir = ownedDir(mkdtempSync(join(tmpdir(), 'pgsnap-repo-')), 0o750);
    url = `file://${dir}`;
  } else {
    if (!s3) throw new Error('an s3 test repository needs the local S3 server');
    url = s3.url(`repo-${process.pid}-${counter}`);
  }
  const env = kind === 's3' ? s3!.env : {};
  const prefix = [
    'env',
    ...Object.entries(env).map(([key, value]) => `${key}=${value}`),
    process.execPath,
    pgsnapBin,
  ].join(' ');
  const pgsnapArgv = [
    ...(kind === 's3' ? ['env', ...Object.entries(env).map(([key, value]) => `${key}=${value}`)] : []),
    process.execPath,
    pgsnapBin,
  ];
  const flags = ['--repo', url, '--cluster', cluster];
  const repoFlags = `--repo "${url}" --cluster ${cluster}`;
  return {
    kind,
    url,
    cluster,
    env,
    flags,
    archiveCommand: (extra = '') => `'${prefix} wal-push %p ${repoFlags} ${extra}'`,
    restoreCommand: (extra = '') => `'${prefix} wal-fetch %f %p ${repoFlags} ${extra}'`,
    restoreCommandLine: (extra = '') => `${prefix} wal-fetch %f %p ${repoFlags} ${extra}`.trimEnd(),
    asyncArchiveCommandLine: (options) =>
      archiveCommandLine({
        spool: join(options.spoolRoot, cluster, `wal-push-${systemIdentifierOf(options.pgdata)}`),
        spoolRoot: options.spoolRoot,
        url,
        cluster,
        parallel: options.parallel,
        pgsnap: options.pgsnap ?? pgsnapArgv,
      }),
    prefetchRestoreCommandLine: (options) =>
      restoreCommandLine({
        spool: options.spool,
        url,
        cluster,
        prefetch: options.prefetch ?? 8,
        pgsnap: options.pgsnap ?? pgsnapArgv,
      }),
    open: () => {
      Object.assign(process.env, env);
      return openRepository(url, cluster);
    },
    destroy: () => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The backup_label a backup stored in the repository, read back (and checked against its manifest). */
export async function storedBackupLabel(repo: TestRepository, backupId: string): Promise<string> {
  const repository = await repo.open();
  try {
    const manifest = (await repository.readManifest(backupId))!;
    const label = await repository.readArtifact(
      manifest.backupId,
      manifest.artifacts.find((a) => a.name === 'backup_label')!,
    );
    return label.toString('utf8');
  } finally {
    repository.close();
  }
}
