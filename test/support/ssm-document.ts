/**
 * What SSM Run Command does with the agent document: check each parameter
 * value against its allowedPattern or allowedValues, fill in defaults, paste
 * the values into the script, and run it with bash.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentDocumentParameters, agentDocumentScript } from '../../infra/agent-document.ts';

export type DocumentParameter = keyof typeof agentDocumentParameters;

export const documentPathLine = 'export PATH=/usr/local/bin:/usr/bin:/bin';

/** Refuses a value as SSM would (`refused: …`), or returns the script with every value pasted in. */
export function renderAgentDocument(values: Partial<Record<DocumentParameter, string>>): string {
  let script = agentDocumentScript.join('\n');
  for (const [name, parameter] of Object.entries(agentDocumentParameters) as Array<
    [DocumentParameter, (typeof agentDocumentParameters)[DocumentParameter]]
  >) {
    const value = values[name] ?? ('default' in parameter ? parameter.default : undefined);
    if (value === undefined) throw new Error(`parameter ${name} is required`);
    if ('allowedValues' in parameter && !(parameter.allowedValues as readonly string[]).includes(value)) {
      throw new Error(`refused: ${name} is not one of the allowed values`);
    }
    if ('allowedPattern' in parameter && !new RegExp(parameter.allowedPattern).test(value)) {
      throw new Error(`refused: ${name} does not match its allowedPattern`);
    }
    script = script.replaceAll(`{{ ${name} }}`, value);
  }
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
  return new Promise((resolve, reject) => {
    const child = spawn(
      'bash',
      ['-c', script.replace(documentPathLine, `export PATH=${binDir}:/usr/bin:/bin`)],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
