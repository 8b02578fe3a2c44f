/** What every command resolves first: which cluster, and where its local state lives. */
import { createOutput, type Output } from './output.ts';
import { type RepositoryChoice, repositoryChoice } from './repository.ts';
import { settingsFrom } from './settings.ts';
import { ClusterState, clusterKey } from './state.ts';

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
  const { cluster, stateDir } = settingsFrom({
    ...(values.cluster !== undefined ? { cluster: values.cluster } : {}),
    ...(values['state-dir'] !== undefined ? { 'state-dir': values['state-dir'] } : {}),
  });
  return {
    out: createOutput(values.json ?? false),
    stateRoot: stateDir,
    cluster,
    state: new ClusterState(stateDir, clusterKey(cluster)),
    repository: repositoryChoice(values),
  };
}
