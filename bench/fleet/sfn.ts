/**
 * Step Functions' API as the fleet's Lambdas call it: the executions of the
 * backup state machine (the bench registers each one it starts), listed and
 * described under Step Functions' published token buckets, answering
 * ThrottlingException beyond them.
 */
import type { VirtualClock } from './clock.ts';
import { awsError, type BucketName, buckets, TokenBucket } from './quotas.ts';

export interface ModelExecution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  startDate: Date;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  input: string;
}

type Input = Record<string, unknown>;

export class SfnModel {
  /** In start order; ListExecutions answers newest first, as Step Functions does. */
  readonly executions: ModelExecution[] = [];
  private readonly byArn = new Map<string, ModelExecution>();
  private readonly buckets = new Map<BucketName, TokenBucket>();
  readonly refusals = new Map<string, number>();

  constructor(private readonly clock: VirtualClock) {}

  private take(name: BucketName, action: string): void {
    let bucket = this.buckets.get(name);
    if (!bucket) {
      bucket = new TokenBucket(buckets[name].size, buckets[name].refill, this.clock.now);
      this.buckets.set(name, bucket);
    }
    if (!bucket.take(this.clock.now)) {
      this.refusals.set('ThrottlingException', (this.refusals.get('ThrottlingException') ?? 0) + 1);
      throw awsError('ThrottlingException', `Rate exceeded (${action})`);
    }
  }

  /** StartExecution, as Scheduler or the start Lambda calls it: throttled, and refused for a name already used. */
  start(execution: Omit<ModelExecution, 'status' | 'startDate'>): ModelExecution {
    this.take('sfn:StartExecution', 'StartExecution');
    if (this.byArn.has(execution.executionArn)) {
      throw awsError('ExecutionAlreadyExists', `Execution Already Exists: '${execution.executionArn}'`);
    }
    const started: ModelExecution = { ...execution, status: 'RUNNING', startDate: new Date(this.clock.now) };
    this.executions.push(started);
    this.byArn.set(started.executionArn, started);
    return started;
  }

  finish(executionArn: string, status: 'SUCCEEDED' | 'FAILED'): void {
    const execution = this.byArn.get(executionArn);
    if (execution) execution.status = status;
  }

  /** Answers ListExecutions, DescribeExecution and SendTask*; throws for anything else. */
  answer(action: string, input: Input): Input {
    switch (action) {
      case 'ListExecutions': {
        this.take('sfn:ListExecutions', action);
        const filter = input.statusFilter as string | undefined;
        const all = this.executions
          .filter((e) => e.stateMachineArn === input.stateMachineArn && (!filter || e.status === filter))
          .reverse();
        const from = Number(input.nextToken ?? 0);
        const size = Math.min(1000, Number(input.maxResults ?? 100) || 100);
        const page = all.slice(from, from + size);
        return {
          executions: page.map(({ input: _, ...e }) => e),
          ...(from + size < all.length ? { nextToken: String(from + size) } : {}),
        };
      }
      case 'DescribeExecution': {
        this.take('sfn:DescribeExecution', action);
        const execution = this.byArn.get(String(input.executionArn));
        if (!execution)
          throw awsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${input.executionArn}'`);
        return { ...execution };
      }
      case 'SendTaskSuccess':
      case 'SendTaskFailure':
      case 'SendTaskHeartbeat':
        this.take('sfn:SendTask', action);
        return {};
      default:
        throw new Error(`the fleet's Step Functions model does not answer ${action}`);
    }
  }
}
