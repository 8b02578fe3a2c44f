/**
 * The AWS SDK commands a Lambda handler can send, read from the code itself:
 * the handler bundled by esbuild as the Lambda is (tree-shaken, so a domain
 * function the handler never calls is not in it), and every `new XxxCommand(`
 * left in the bundle traced back to the `@aws-sdk/client-*` package it was
 * imported from.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface SentCommand {
  /** The SDK client package's service: `ec2`, `s3`, `sfn`, `kms`, `sts`, `ssm`. */
  client: string;
  /** The operation: `CopySnapshot`, `ListObjectsV2`. */
  operation: string;
}

/** The commands that `file` (relative to the project root) can send, each once, sorted. */
export async function sentCommands(file: string): Promise<SentCommand[]> {
  const result = await build({
    entryPoints: [join(root, file)],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: ['@aws-sdk/*'],
    treeShaking: true,
    logLevel: 'silent',
  });
  const text = result.outputFiles[0]!.text;
  // A name in the bundle -> [client, imported name]; esbuild renames clashing imports (`X as X2`).
  const imported = new Map<string, [string, string]>();
  for (const [, names, client] of text.matchAll(
    /import\s*\{([^}]*)\}\s*from\s*"@aws-sdk\/client-([\w-]+)"/g,
  )) {
    for (const entry of names!.split(',')) {
      const [name, alias] = entry.trim().split(/\s+as\s+/);
      if (name) imported.set(alias ?? name, [client!, name]);
    }
  }
  const found = new Map<string, SentCommand>();
  for (const [, local] of text.matchAll(/new\s+([\w$]+)\s*\(/g)) {
    const source = imported.get(local!);
    if (!source?.[1].endsWith('Command')) continue;
    const command = { client: source[0], operation: source[1].slice(0, -'Command'.length) };
    found.set(`${command.client}:${command.operation}`, command);
  }
  return [...found.values()].sort((a, b) =>
    `${a.client}:${a.operation}`.localeCompare(`${b.client}:${b.operation}`),
  );
}
