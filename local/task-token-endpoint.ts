/**
 * A local stand-in for the Step Functions API's task-token calls, on
 * 127.0.0.1: the agent, run with `--task-token` and AWS_ENDPOINT_URL_SFN
 * pointing here, answers through SendTaskSuccess / SendTaskFailure /
 * SendTaskHeartbeat exactly as it does in AWS (JSON 1.0 protocol). Other
 * actions (StartExecution, GetExecutionHistory…) answer with what a test sets
 * through `handle`.
 */
import { createServer, type Server } from 'node:http';

export class TaskFailure extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface Waiter {
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
}

export class TaskTokenEndpoint {
  private readonly waiters = new Map<string, Waiter>();
  private readonly handlers = new Map<string, (input: Record<string, unknown>) => unknown>();
  /** The input of every call to a handled action, in order. */
  readonly requests: Array<{ action: string; input: Record<string, unknown> }> = [];
  /** Every call received, in order: `SendTaskSuccess`, `SendTaskHeartbeat`… */
  readonly calls: Array<{ action: string; taskToken: string }> = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<TaskTokenEndpoint> {
    let endpoint: TaskTokenEndpoint | undefined;
    const server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        body += chunk;
      });
      request.on('end', () => {
        const action = String(request.headers['x-amz-target'] ?? '').replace('AWSStepFunctions.', '');
        const input = JSON.parse(body || '{}');
        const handler = endpoint!.handlers.get(action);
        if (handler) {
          endpoint!.requests.push({ action, input });
          let answer: unknown;
          try {
            answer = handler(input);
          } catch (error) {
            // An error a handler throws is Step Functions' error of that name (ExecutionAlreadyExists...).
            const { name, message } = error as Error;
            response.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
            response.end(JSON.stringify({ __type: name, message }));
            return;
          }
          response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
          response.end(JSON.stringify(answer));
          return;
        }
        response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        endpoint!.receive(action, input);
        response.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    endpoint = new TaskTokenEndpoint(server, `http://127.0.0.1:${port}`);
    return endpoint;
  }

  /** Answers `action` (e.g. `StartExecution`) with what `handler` returns, or the AWS error named as the one it throws. */
  handle(action: string, handler: (input: Record<string, unknown>) => unknown): void {
    this.handlers.set(action, handler);
  }

  /** The environment that points the AWS SDK in the agent here. */
  get env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_SFN: this.url,
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    };
  }

  /** The answer for `taskToken`: the output of SendTaskSuccess, or SendTaskFailure's error as a rejection. */
  answerFor(taskToken: string): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiters.set(taskToken, { resolve, reject }));
  }

  private receive(
    action: string,
    input: { taskToken: string; output?: string; error?: string; cause?: string },
  ) {
    this.calls.push({ action, taskToken: input.taskToken });
    const waiter = this.waiters.get(input.taskToken);
    if (!waiter || action === 'SendTaskHeartbeat') return;
    this.waiters.delete(input.taskToken);
    if (action === 'SendTaskSuccess') waiter.resolve(JSON.parse(input.output ?? 'null'));
    else waiter.reject(new TaskFailure(input.error ?? 'Error', input.cause ?? ''));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
