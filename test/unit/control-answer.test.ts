/**
 * An error that crosses the control channel (the holder's, the agent
 * service's) keeps its name: the CLI's exit code and the state machine's
 * Catch match on it, not on the message.
 */
import { describe, expect, test } from 'vitest';
import { exitCodeFor, PreconditionError } from '#domain/errors';
import { answerError } from '../../agent/session/control.ts';

describe('answerError', () => {
  test('a PreconditionError stays one: exit code 3 and the same name for Step Functions', () => {
    const error = answerError({ name: 'PreconditionError', message: 'backup X is not in progress here' });
    expect(error).toBeInstanceOf(PreconditionError);
    expect(error.name).toBe('PreconditionError');
    expect(error.message).toBe('backup X is not in progress here');
    expect(exitCodeFor(error)).toBe(3);
  });

  test('a name the agent has no class for is kept as it came', () => {
    const error = answerError({ name: 'UnexpectedHolderError', message: 'boom' });
    expect(error.name).toBe('UnexpectedHolderError');
    expect(error.message).toBe('boom');
    expect(exitCodeFor(error)).toBe(1);
  });
});
