/** What every command resolves first: which cluster, and where its local state lives. */
import { validateClusterName } from '#domain/ids';
import { ClusterState, clusterKey, defaultStateRoot } from '../session/state.ts';
import { createOutput, type Output } from './output.ts';
import { type RepositoryChoice, repositoryChoice } from './repository-options.ts';

export interface Context {
  out: Output;
  stateRoot: string;
  cluster: string | undefined;
  state: ClusterState;
  /** Where backups are catalogued (--repo / PGSNAP_REPO), if anywhere. */
  repository: RepositoryChoice | undefined;
}

export function createContext(values: {
  json?: boolean;
  cluster?: string;
  repo?: string;
  'state-dir'?: string;
}): Context {
  const cluster = values.cluster ?? process.env.PGSNAP_CLUSTER;
  if (cluster !== undefined) validateClusterName(cluster);
  const stateRoot = values['state-dir'] ?? defaultStateRoot();
  return {
    out: createOutput(values.json ?? false),
    stateRoot,
    cluster,
    state: new ClusterState(stateRoot, clusterKey(cluster)),
    repository: repositoryChoice(values),
  };
}
