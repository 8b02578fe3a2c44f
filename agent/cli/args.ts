/** Strict flag parsing on node:util parseArgs: unknown flags and conflicts are usage errors. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '#domain/errors';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const commonOptions = {
  json: { type: 'boolean', default: false },
  cluster: { type: 'string' },
  repo: { type: 'string' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies Options;

export function parse<T extends Options>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  let parsed: ReturnType<typeof parseWithTokens<T>>;
  try {
    parsed = parseWithTokens(args, options, allowPositionals);
  } catch (error) {
    throw new UsageError(
      `pgsnap ${command}: ${(error as Error).message}. Run pgsnap ${command} --help for usage.`,
    );
  }
  refuseRepeated(command, parsed.tokens, options);
  return { values: parsed.values, positionals: parsed.positionals };
}

function parseWithTokens<T extends Options>(args: string[], options: T, allowPositionals: boolean) {
  return parseArgs({
    args,
    options: { ...commonOptions, ...options },
    strict: true,
    allowPositionals,
    tokens: true,
  });
}

/**
 * parseArgs keeps the last of a repeated option; `--label a --label b` is more
 * likely a mistake than a choice. Options declared `multiple: true`
 * (`restore --tablespace OID=DIR ...`) collect every value instead.
 */
function refuseRepeated(
  command: string,
  tokens: Array<{ kind: string; name?: string; value?: string }>,
  options: Options,
) {
  const given = new Map<string, string[]>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.value === undefined) continue;
    if (options[token.name!]?.multiple) continue;
    given.set(token.name!, [...(given.get(token.name!) ?? []), token.value]);
  }
  for (const [name, values] of given) {
    if (values.length > 1) {
      throw new UsageError(
        `pgsnap ${command}: --${name} is given ${values.length} times (${values.map((v) => JSON.stringify(v)).join(', ')}); give it once`,
      );
    }
  }
}

export function refuseTogether(command: string, values: Record<string, unknown>, flags: string[]): void {
  const given = flags.filter((flag) => values[flag] !== undefined && values[flag] !== false);
  if (given.length > 1) {
    throw new UsageError(
      `pgsnap ${command}: cannot specify both ${given.map((f) => `--${f}`).join(' and ')}`,
    );
  }
}
