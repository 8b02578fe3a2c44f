/** SendTaskSuccess for the budget Lambdas, which answer the tokens of the waiters they wake. */
import { SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { sdkRetry } from '#domain/aws-retry';
import type { TaskAnswers } from '#domain/budget/queue';

export const stepFunctionsAnswers = (sfn: SFNClient): TaskAnswers => ({
  async succeed(token, output) {
    await sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output) }));
  },
});

let answers: TaskAnswers | undefined;
/** One client per Lambda container, made on first use. */
export const lambdaAnswers = (): TaskAnswers => {
  answers ??= stepFunctionsAnswers(new SFNClient(sdkRetry));
  return answers;
};
