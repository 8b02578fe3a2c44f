/**
 * The state machines' SSM steps on one machine: the synthesized document
 * rendered with the step's parameters as SSM Run Command would, its PATH
 * pointed at the local agent and its settings taken from the environment,
 * run with bash; the agent answers through the local task-token endpoint.
 */
import { agentSettingsLine } from '../infra/backup/agent-document.ts';
import type { AgentDocumentContent } from '../infra/local-run/synthesize.ts';
import { renderDocument, replaceLine, runScript } from './agent-document.ts';
import type { Json, TaskHandler } from './state-machine.ts';
import type { TaskTokenEndpoint } from './task-token-endpoint.ts';

/** Lines of the agent documents the local run changes: PATH gets the local agent, settings come from `env`. */
const documentPathLine = 'export PATH=/usr/local/bin:/usr/bin:/bin';

export interface HostCommandOptions {
  document: AgentDocumentContent;
  endpoint: TaskTokenEndpoint;
  /** A directory with an executable `pgsnap` (the agent as installed on a host). */
  agentBinDir: string;
  /** The agent's environment: the libpq settings and its state directory. */
  agentEnv: NodeJS.ProcessEnv;
  detail: (message: string) => void;
  /** Ends the host commands under way, and starts no other (the demo interrupted). */
  signal?: AbortSignal | undefined;
  /** Host commands still running are kept here until they exit, so that a cleanup can wait for them. */
  hostCommands?: Set<Promise<unknown>> | undefined;
  /** Each answer, by the document's `command` parameter. */
  onAnswer?: (command: string, answer: Record<string, Json>) => void;
}

export function hostCommands(options: HostCommandOptions): TaskHandler {
  const { endpoint } = options;
  return async (input) => {
    const parameters = (input as { Parameters: Record<string, string[]> }).Parameters;
    const values = Object.fromEntries(Object.entries(parameters).map(([key, value]) => [key, value[0]]));
    let script = renderDocument(options.document, values);
    script = replaceLine(
      script,
      documentPathLine,
      `export PATH=${options.agentBinDir}:/usr/bin:/bin:/usr/sbin:/sbin`,
    );
    script = replaceLine(
      script,
      agentSettingsLine,
      'settings= # settings from the environment of the local run',
    );
    if (options.signal?.aborted) throw new Error('interrupted: no more host commands');
    const answer = endpoint.answerFor(values.taskToken ?? '');
    const exited = runScript(
      script,
      { ...options.agentEnv, ...endpoint.env },
      (line) => options.detail(`agent: ${line}`),
      options.signal,
    );
    options.hostCommands?.add(exited);
    void exited.finally(() => options.hostCommands?.delete(exited)).catch(() => {});
    const document = (await Promise.race([
      answer,
      exited.then(async (ran) => {
        // In AWS a silent agent leaves the task to time out; here it is said at once.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        throw new Error(`the agent exited ${ran.code} without answering Step Functions: ${ran.stderr}`);
      }),
    ])) as Record<string, Json>;
    await exited;
    options.onAnswer?.(values.command ?? '', document);
    return document;
  };
}
