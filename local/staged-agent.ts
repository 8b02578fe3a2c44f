/**
 * The agent where the demo's servers can run it. As root, the throwaway
 * servers run as postgres, and their archive_command and restore_command run
 * pgsnap; the checkout pgsnap runs from may be where postgres cannot reach (a
 * clone under /root, mode 0700), and so may Node.js (nvm under a home
 * directory). So the agent is installed from this build's host tarball
 * (dist/pgsnap-agent.tar.gz, what goes to /usr/local on a database host) into
 * a directory the demo owns, and Node.js is linked, or copied, beside it when
 * the servers' user cannot run this one. The directory goes with the demo's.
 * Also the host as the local runs (the demo, bench/restore) show it to that
 * agent: its volumes and its environment.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { PreconditionError } from '#domain/errors';
import { firstBlocked, pathChecks, requireServerCanRun } from '../agent/restore/server-can-run.ts';
import type { ClusterPath } from '../agent/volumes/cluster-paths.ts';
import { shellQuote } from '../agent/wal/shell-lines.ts';
import type { LocalVolume } from './local-ec2.ts';

/**
 * Installs the agent under `dir` and returns the command line (Node.js, script) the servers run;
 * from the tarball beside the running pgsnap.mjs unless another is given (a bench run from the checkout).
 */
export function stageAgent(
  dir: string,
  uid: number,
  tarball = join(dirname(realpathSync(process.argv[1]!)), 'pgsnap-agent.tar.gz'),
): string[] {
  if (!existsSync(tarball)) {
    throw new PreconditionError(
      `pgsnap demo installs the agent from the build beside it (${tarball}) and runs from the project checkout: ` +
        'run npm install && npm start there',
    );
  }
  // The tarball has no entries for bin/ and lib/ (it must not change /usr/local's): made here, whatever the umask.
  for (const sub of ['', 'bin', 'lib']) {
    mkdirSync(join(dir, sub), { recursive: true });
    chmodSync(join(dir, sub), 0o755);
  }
  execFileSync('tar', ['-xzf', tarball, '-C', dir]);
  let node = process.execPath;
  if (firstBlocked(uid, pathChecks(node, '-x'))) {
    node = join(dir, 'bin', 'node');
    try {
      linkSync(process.execPath, node);
    } catch {}
    // A link shares the original's mode; when that is what stops the server's user, a copy of its own.
    if (!existsSync(node) || firstBlocked(uid, pathChecks(node, '-x'))) {
      rmSync(node, { force: true });
      copyFileSync(process.execPath, node);
      chmodSync(node, 0o755);
    }
  }
  const command = [node, join(dir, 'lib', 'pgsnap', 'pgsnap.mjs')];
  requireServerCanRun(command, uid, 'archive_command and restore_command');
  return command;
}

/**
 * `binDir/pgsnap` running the staged agent: the agent as installed on a host
 * (/usr/local/bin/pgsnap), which the SSM documents find on their PATH.
 */
export function agentOnPath(binDir: string, agent: string[]): string {
  writeFileSync(join(binDir, 'pgsnap'), `#!/bin/sh\nexec ${agent.map(shellQuote).join(' ')} "$@"\n`, {
    mode: 0o755,
  });
  return binDir;
}

/**
 * The environment of the agent a local run's servers and state machine call:
 * the libpq connection of the source, its state directory under `work`, the
 * volumes file that stands for the local EC2's attachments, and the
 * repository (PGSNAP_REPO, as pgsnap.env names it on a host: the restore
 * document takes none).
 */
export function localAgentEnv(
  sourceEnv: NodeJS.ProcessEnv,
  work: string,
  volumesFile: string,
  repositoryUrl: string,
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...sourceEnv,
    PGSNAP_STATE_DIR: join(work, 'state'),
    PGSNAP_LOCAL_VOLUMES: volumesFile,
    PGSNAP_REPO: repositoryUrl,
  };
}

/** The root device of the local host's instance. */
export const localRootDevice = '/dev/xvda';

/**
 * The local host's volumes: a root volume holding none of the cluster, then
 * one EBS-like volume for each of the cluster's directories (/dev/sdf, /dev/sdg…).
 * Here, not in local-ec2.ts, which loads the AWS SDK: the local runs load it
 * only once their environment is set.
 */
export function localHostVolumes(paths: ClusterPath[]): LocalVolume[] {
  return [
    { volumeId: 'vol-0000000000000000f', device: localRootDevice },
    ...paths.map((holds, index) => ({
      volumeId: `vol-${(index + 1).toString(16).padStart(17, '0')}`,
      device: `/dev/sd${String.fromCharCode(102 + index)}`,
      holds,
    })),
  ];
}
