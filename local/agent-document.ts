/**
 * What SSM Run Command does with the agent's document: check each parameter
 * value against its allowedPattern or allowedValues, fill in defaults, paste
 * the values into the script, and run it with bash. Used by `pgsnap demo` for
 * the state machine's host steps, and by the tests of the document.
 */
import { spawn } from 'node:child_process';
import type { AgentDocumentContent } from '../infra/local-run/synthesize.ts';

/** Refuses a value as SSM would (`refused: …`), or returns the script with every value pasted in. */
export function renderDocument(
  content: AgentDocumentContent,
  values: Record<string, string | undefined>,
): string {
  let script = content.runCommand.join('\n');
  // SendCommand refuses a parameter the document does not declare (InvalidParameters).
  for (const name of Object.keys(values)) {
    if (values[name] !== undefined && !(name in content.parameters)) {
      throw new Error(`refused: ${name} is not a parameter of the document`);
    }
  }
  for (const [name, parameter] of Object.entries(content.parameters)) {
    const value = values[name] ?? parameter.default;
    if (value === undefined) throw new Error(`parameter ${name} is required`);
    if (parameter.allowedValues && !parameter.allowedValues.includes(value)) {
      throw new Error(`refused: ${name} is not one of the allowed values`);
    }
    if (parameter.allowedPattern && !new RegExp(parameter.allowedPattern).test(value)) {
      throw new Error(`refused: ${name} does not match its allowedPattern`);
    }
    script = script.replaceAll(`{{ ${name} }}`, value);
  }
  return script;
}

/** Replaces one whole line of the script, which must be there (the document changed otherwise). */
export function replaceLine(script: string, line: string, replacement: string): string {
  const lines = script.split('\n');
  const index = lines.indexOf(line);
  if (index < 0) throw new Error(`the agent document no longer has the line ${JSON.stringify(line)}`);
  lines[index] = replacement;
  return lines.join('\n');
}

/**
 * Runs a rendered script with bash, as SSM's aws:runShellScript does; stderr
 * lines also go to `onStderr`. Aborting `signal` ends the script (SIGTERM).
 */
export function runScript(
  script: string,
  env: NodeJS.ProcessEnv,
  onStderr?: (line: string) => void,
  signal?: AbortSignal,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(signal ? { signal } : {}),
    });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (!onStderr) return;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onStderr(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (partial && onStderr) onStderr(partial);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
