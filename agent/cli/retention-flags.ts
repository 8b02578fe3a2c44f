/** The retention rules as flags (`pgsnap retention`, `pgsnap doctor --fleet`): --keep-last, --keep-days, --thin. */
import { type RetentionPolicy, validatePolicy } from '#domain/backup/retention';
import { UsageError } from '#domain/errors';

export const retentionFlags = {
  'keep-last': { type: 'string' },
  'keep-days': { type: 'string' },
  thin: { type: 'string' },
} as const;

/** `--thin H,D,W,M`: hours, days, weeks, months; a missing trailing field is 0. */
function thinningFrom(text: string | undefined): RetentionPolicy['thin'] {
  if (text === undefined) return undefined;
  if (!/^\d+(,\d+){0,3}$/.test(text))
    throw new UsageError(`--thin takes H,D,W,M (e.g. 24,7,4,12); got ${JSON.stringify(text)}`);
  const [hours = 0, days = 0, weeks = 0, months = 0] = text.split(',').map(Number);
  return { hours, days, weeks, months };
}

/** The policy the flags give, validated; undefined when none of them is given. */
export function policyFrom(values: {
  'keep-last'?: string;
  'keep-days'?: string;
  thin?: string;
}): RetentionPolicy | undefined {
  const number = (flag: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text))
      throw new UsageError(`--${flag} takes a number; got ${JSON.stringify(text)}`);
    return value;
  };
  const keepLast = number('keep-last', values['keep-last']);
  const keepDays = number('keep-days', values['keep-days']);
  const thin = thinningFrom(values.thin);
  if (keepLast === undefined && keepDays === undefined && thin === undefined) return undefined;
  return validatePolicy({
    ...(keepLast !== undefined ? { keepLast } : {}),
    ...(keepDays !== undefined ? { keepDays } : {}),
    ...(thin !== undefined ? { thin } : {}),
  });
}
