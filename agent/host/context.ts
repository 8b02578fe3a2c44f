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
  /**
   * Answering a task token of the state machine: the orchestrator (its Lambdas) records the manifest,
   * and this host only proposes, in its task result. The host still writes what is write-once and
   * verifiable (WAL, the pin, the artifacts). Without a token the agent is the orchestrator.
   */
  proposeOnly?: boolean;
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
