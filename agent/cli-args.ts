/** Strict flag parsing on node:util parseArgs: unknown flags and conflicts are usage errors. */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '#domain/errors';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const commonOptions = {
  json: { type: 'boolean', default: false },
  cluster: { type: 'string' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies Options;

export function parse<T extends Options>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...options }, strict: true, allowPositionals });
  } catch (error) {
    throw new UsageError(
      `pgsnap ${command}: ${(error as Error).message}. Run pgsnap ${command} --help for usage.`,
    );
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
