/**
 * `.waitForTaskToken` Lambda steps on one machine: each attempt of such a step
 * gets a fresh token, its handler runs with the token in its payload (as
 * Step Functions puts `$$.Task.Token` there), and the step's result is what
 * the token is answered with, by that handler or by any later one (a budget's
 * return waking a waiter). A token no longer waited on (its attempt timed
 * out) is refused as Step Functions refuses it, with TaskTimedOut.
 */
import type { TaskAnswers } from '#domain/budget/queue';
import type { Json } from './state-machine.ts';

export class TaskTimedOut extends Error {
  override name = 'TaskTimedOut';
}

export class LocalTaskTokens implements TaskAnswers {
  private readonly waiting = new Map<string, (output: Json) => void>();
  private issued = 0;
  /** Every answer given, in order (what a test checks: who was woken). */
  readonly answered: Array<{ token: string; output: Json }> = [];

  /** @param onAnswer called before each answer (the bench counts and throttles SendTaskSuccess there). */
  constructor(private readonly onAnswer?: () => void) {}

  async succeed(token: string, output: unknown): Promise<void> {
    this.onAnswer?.();
    const resolve = this.waiting.get(token);
    if (!resolve) throw new TaskTimedOut(`Task Timed Out: '${token}'`);
    this.waiting.delete(token);
    this.answered.push({ token, output: output as Json });
    resolve(output as Json);
  }

  /** Whether some attempt still waits for its token. */
  get waiters(): number {
    return this.waiting.size;
  }

  /** The local handler of a `.waitForTaskToken` Lambda step calling `handle` (its Parameters hold the Payload). */
  task(handle: (event: Json) => Promise<unknown>): (input: Json) => Promise<Json> {
    return async (input) => {
      const token = `local-task-token-${++this.issued}`;
      const promise = new Promise<Json>((resolve) => this.waiting.set(token, resolve));
      const payload =
        (input as { Payload?: Record<string, Json> }).Payload ?? (input as Record<string, Json>);
      try {
        await handle({ ...payload, taskToken: token });
      } catch (error) {
        // The Lambda failed: the step fails with its error, as Step Functions' Lambda integration does.
        this.waiting.delete(token);
        throw error;
      }
      return promise;
    };
  }
}
