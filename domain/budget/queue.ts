/**
 * The budgets' queue as Step Functions waits in it: the acquire step is a
 * `.waitForTaskToken` task whose Lambda takes a share or leaves its token with
 * the waiters (semaphore.ts), and whoever frees units (a return, a take that
 * finds leases lapsed) answers the tokens of the waiters it handed them to,
 * through SendTaskSuccess. The task then costs two state transitions however
 * long it waits, where a Retry per ask cost one each.
 *
 * A wake-up can be lost: the answer is throttled past the SDK's retries, the
 * Lambda dies between the write and the answer, or the waiter's task timed out
 * just before (SendTaskSuccess answers TaskTimedOut). None strands a backup:
 * the task's TimeoutSeconds ends the wait, its Retry on States.Timeout asks
 * again, and the ask finds the share already its own (`take` is idempotent
 * per holder). So an answer that fails for a woken waiter is logged, not
 * thrown: the write that handed it the share must stand.
 */
import { type BudgetShare, type BudgetStore, giveBack, take, type Woken } from './semaphore.ts';

/** Step Functions' SendTaskSuccess, or its local stand-in. */
export interface TaskAnswers {
  succeed(token: string, output: unknown): Promise<void>;
}

/** What the waiting task is answered once it holds its share (its step's result). */
export interface ShareTaken {
  units: number;
  held: number;
  limit: number;
}

/** Answers every woken waiter that left a token; a failed answer is the waiter's timeout's to repair. */
async function wake(
  answers: TaskAnswers,
  woken: Woken[],
  held: number,
  limit: number,
): Promise<{ answered: number; lost: string[] }> {
  const lost: string[] = [];
  let answered = 0;
  await Promise.all(
    woken.map(async (w) => {
      if (!w.token) return;
      try {
        await answers.succeed(w.token, { units: w.units, held, limit } satisfies ShareTaken);
        answered++;
      } catch (error) {
        lost.push(`${w.holder}: ${(error as Error).name}: ${(error as Error).message}`);
      }
    }),
  );
  if (lost.length > 0) {
    console.warn(
      JSON.stringify({
        message: 'wake-ups lost; those waiters take their share when their task times out',
        lost,
      }),
    );
  }
  return { answered, lost };
}

/**
 * The acquire step's Lambda with a task token: takes the share and answers its
 * own token at once, or leaves the token with the waiters and returns (the
 * task goes on waiting). Either way it answers whoever its write woke.
 */
export async function takeOrWait(
  store: BudgetStore,
  answers: TaskAnswers,
  share: BudgetShare & { token: string },
  now?: () => Date,
): Promise<{ taken: boolean; woken: number; held: number }> {
  const outcome = await take(store, share, now);
  await wake(answers, outcome.woken, outcome.record.held, share.limit);
  if (outcome.taken) {
    await answers.succeed(share.token, {
      units: share.units,
      held: outcome.record.held,
      limit: share.limit,
    } satisfies ShareTaken);
  }
  return { taken: outcome.taken, woken: outcome.woken.length, held: outcome.record.held };
}

/** The release step's Lambda: returns the share and wakes the waiters the freed units go to. */
export async function giveBackAndWake(
  store: BudgetStore,
  answers: TaskAnswers,
  budget: { key: string; limit: number },
  holder: string,
  now?: () => Date,
): Promise<{ held: number; woken: number; lost: number }> {
  const outcome = await giveBack(store, budget.key, holder, { limit: budget.limit }, now);
  const { lost } = await wake(answers, outcome.woken, outcome.record.held, budget.limit);
  return { held: outcome.record.held, woken: outcome.woken.length, lost: lost.length };
}
