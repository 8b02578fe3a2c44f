/** Validation of operator input, at the edge, with messages that say what to do. */
import { UsageError } from '../errors.ts';

/*
 * Each rule here is the one source of what an input may be: the SSM
 * document's allowedPatterns are made from these patterns, not written again.
 * They are kept to what both JavaScript and the (Java) regular expressions SSM
 * evaluates read the same way: no \d, no flags. The ids and the cluster name
 * are in ../ids.ts.
 */

/**
 * The longest label the whole path carries. PostgreSQL would take 1024 bytes
 * (MAXPGPATH in do_pg_backup_start), but a label the state machine is given
 * also reaches the host as a parameter of the SSM document, whose pattern is
 * made from this limit; every character a label may have is one byte.
 */
export const maxLabelLength = 128;

/*
 * backup_label is read back with sscanf line by line, so a newline in the label
 * corrupts it; and labels travel through SSM documents and shell scripts, so
 * anything a shell would interpret is refused rather than quoted.
 */
const labelCharacters = 'A-Za-z0-9 ._:@+=,/-';
const labelCharacter = new RegExp(`[${labelCharacters}]`);
/** The first character is neither "-" (it would read as a flag) nor a space. */
const labelFirstCharacters = 'A-Za-z0-9._:@+=,/';

/** Exactly the labels validateLabel accepts, as one pattern (the SSM document's allowedPattern). */
export const labelPattern = new RegExp(
  `^[${labelFirstCharacters}][${labelCharacters}]{0,${maxLabelLength - 1}}$`,
);

export function validateLabel(label: string): string {
  if (label.length === 0) throw new UsageError('--label must not be empty; use for example --label nightly');
  if (label.length > maxLabelLength) {
    throw new UsageError(
      `--label is ${label.length} characters; a backup takes at most ${maxLabelLength} (the state machine ` +
        'passes it to the host through the SSM document), so shorten it',
    );
  }
  for (const [index, char] of [...label].entries()) {
    if (!labelCharacter.test(char)) {
      throw new UsageError(
        `--label may contain only letters, digits, space and . _ : @ + = , / - ; ` +
          `it has ${JSON.stringify(char)} at position ${index + 1}`,
      );
    }
  }
  if (label.startsWith('-') || label.startsWith(' ')) {
    throw new UsageError('--label must not start with "-" or a space');
  }
  return label;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `90s`, `15m`, `1h`, `1h30m`; a unit is required so that `3600` is never misread. */
export function parseDuration(text: string, flag: string): number {
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== text) {
    throw new UsageError(
      `${flag} ${JSON.stringify(text)} is not a duration; use for example 90s, 15m, 1h or 1h30m`,
    );
  }
  const millis = parts.reduce((sum, part) => sum + Number(part[1]) * durationUnits[part[2]!]!, 0);
  if (millis <= 0) throw new UsageError(`${flag} must be longer than zero`);
  return millis;
}

export function formatDuration(millis: number): string {
  if (millis < 1000) return `${millis}ms`;
  const seconds = Math.round(millis / 1000);
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes}m${seconds % 60 ? `${seconds % 60}s` : ''}`;
  return `${Math.floor(minutes / 60)}h${minutes % 60 ? `${minutes % 60}m` : ''}`;
}
