/**
 * The agent document as the tests run it: the infra's parameters and script,
 * rendered and run as SSM would (local/agent-document.ts), with a
 * directory of the test's choosing first on PATH.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentDocumentParameters, agentDocumentScript } from '../../infra/backup/agent-document.ts';
import { renderDocument, replaceLine, runScript } from '../../local/agent-document.ts';

export type DocumentParameter = keyof typeof agentDocumentParameters;

export const documentPathLine = 'export PATH=/usr/local/bin:/usr/bin:/bin';

/** Refuses a value as SSM would (`refused: …`), or returns the script with every value pasted in. */
export function renderAgentDocument(values: Partial<Record<DocumentParameter, string>>): string {
  const script = renderDocument(
    { parameters: agentDocumentParameters, runCommand: [...agentDocumentScript] },
    values,
  );
  if (!script.includes(documentPathLine)) throw new Error('the document no longer sets PATH as expected');
  return script;
}

/** Makes a directory with an executable `pgsnap` that runs the given script body. */
export function fakeBinDir(dir: string, body: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pgsnap'), body);
  chmodSync(join(dir, 'pgsnap'), 0o755);
  return dir;
}

/** Runs the rendered document with `binDir` first on PATH, as root would through SSM. */
export function runDocument(
  script: string,
  binDir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return runScript(replaceLine(script, documentPathLine, `export PATH=${binDir}:/usr/bin:/bin`), env);
}
