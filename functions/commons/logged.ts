/**
 * One JSON log line per step, written by Powertools for AWS Lambda's Logger:
 * the step, the cluster and the backupId from the event, the Lambda request
 * id (and the function's name, cold start, X-Ray trace id) from the context;
 * a failure logged with its error's name, message, cause and, for an AWS call
 * that failed, that call's request id ($metadata), before it is rethrown for
 * the state machine's Retry and Catch. The saved Logs Insights query of the
 * stack (infra/monitoring/log-queries.ts) finds every line of one backup by its
 * backupId.
 *
 * Outside Lambda (`pgsnap demo`, the e2e tests run the handlers in-process)
 * the logger is silent, unless POWERTOOLS_LOG_LEVEL asks otherwise.
 */
import { Logger } from '@aws-lambda-powertools/logger';

const inLambda = process.env.AWS_LAMBDA_FUNCTION_NAME !== undefined;

export const logger = new Logger({
  serviceName: 'pgsnap',
  ...(inLambda || process.env.POWERTOOLS_LOG_LEVEL ? {} : { logLevel: 'SILENT' }),
});

type Context = Parameters<typeof logger.addContext>[0];

/** The event's fields that tell which backup a line is about. */
const keyFields = ['cluster', 'backupId', 'state', 'trigger', 'restoreId'] as const;

function keysOf(event: unknown): Record<string, string> {
  if (typeof event !== 'object' || event === null) return {};
  const keys: Record<string, string> = {};
  for (const field of keyFields) {
    const value = (event as Record<string, unknown>)[field];
    if (typeof value === 'string') keys[field] = value;
  }
  return keys;
}

/** What a result says, without a whole snapshot or copy set when it is large. */
function summary(result: unknown): unknown {
  const text = JSON.stringify(result) ?? 'undefined';
  if (text.length <= 4_000 || typeof result !== 'object' || result === null) return result;
  return { keys: Object.keys(result), bytes: text.length };
}

/**
 * `handle` with a log line when it ends, and one with the error when it fails.
 * An error `handle` throws before it returns its promise (a refused event) is
 * thrown as it was, not turned into a rejection.
 */
export function logged<R>(step: string, handle: (event: unknown) => Promise<R>) {
  return (event: unknown, context?: Context): Promise<R> => {
    if (context) logger.addContext(context);
    logger.appendKeys({ step, ...keysOf(event) });
    const failed = (error: unknown): never => {
      logger.error(`${step} failed`, error as Error);
      logger.resetKeys();
      throw error;
    };
    let pending: Promise<R>;
    try {
      pending = handle(event);
    } catch (error) {
      return failed(error);
    }
    return pending.then((result) => {
      logger.info(`${step} done`, { result: summary(result) });
      logger.resetKeys();
      return result;
    }, failed);
  };
}
