/**
 * The repository side: reachable, pinned to this very cluster, and its
 * newest WAL file fetched and verified (decoding checks the segment header
 * and the sha256 the archiver stored with it).
 */
import { messageOf } from '#domain/errors';
import { type ClusterPin, checkClusterPin } from '#domain/repository/cluster-pin';
import type { Repository } from '#domain/repository/repository';
import { type CheckResult, fail, ok, skip, warn } from './check.ts';

export interface ServerIdentity {
  systemIdentifier: string;
  walSegmentSize: number;
  /** pg_stat_archiver.last_archived_wal: what the server believes is in the repository. */
  lastArchivedWal: string | null;
}

const segmentName = /^[0-9A-F]{24}$/;

export async function repositoryChecks(
  repository: Repository,
  server: ServerIdentity,
): Promise<CheckResult[]> {
  let pin: ClusterPin | undefined;
  try {
    pin = await repository.readPin();
  } catch (error) {
    return [
      fail(
        'repository.reachable',
        `cannot read ${repository.url}: ${messageOf(error)}. Check the URL (--repo, PGSNAP_REPO), the network ` +
          "path to it (S3 endpoint, proxy), and that the instance role's policy allows this cluster's prefix",
      ),
      skip('repository.pin', 'the repository is unreachable'),
      skip('repository.wal', 'the repository is unreachable'),
    ];
  }
  const results = [ok('repository.reachable', `${repository.url} answers`)];
  if (!pin) {
    results.push(
      warn(
        'repository.pin',
        `${repository.url} holds no cluster.json yet: the first archived WAL file pins it to this cluster. ` +
          'If WAL has been archived, archive_command writes somewhere else',
      ),
      skip('repository.wal', 'nothing archived in the repository yet'),
    );
    return results;
  }
  try {
    checkClusterPin(pin, server, repository.url);
  } catch (error) {
    results.push(
      fail('repository.pin', messageOf(error)),
      skip('repository.wal', 'another cluster’s repository'),
    );
    return results;
  }
  results.push(
    ok(
      'repository.pin',
      `${repository.url} is pinned to this cluster (system identifier ${pin.systemIdentifier})`,
    ),
  );

  let name =
    server.lastArchivedWal && segmentName.test(server.lastArchivedWal) ? server.lastArchivedWal : undefined;
  try {
    name ??= (await repository.listWal())
      .map((w) => w.name)
      .filter((n) => segmentName.test(n))
      .sort()
      .at(-1);
    if (!name) {
      results.push(
        warn('repository.wal', `no WAL segment in ${repository.url} yet; nothing to restore from`),
      );
      return results;
    }
    const content = await repository.fetchWal(pin, name);
    if (!content) {
      results.push(
        fail(
          'repository.wal',
          `the server archived ${name}, but ${repository.url} does not hold it: archive_command stores WAL ` +
            'somewhere else than this repository (check its --repo and --cluster)',
        ),
      );
    } else {
      results.push(ok('repository.wal', `${name} fetched and verified (${content.length} bytes)`));
    }
  } catch (error) {
    results.push(
      fail(
        'repository.wal',
        `${name ?? 'the newest WAL file'} cannot be fetched and verified: ${messageOf(error)}; a restore would stop there`,
      ),
    );
  }
  return results;
}
