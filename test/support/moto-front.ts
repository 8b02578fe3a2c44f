/**
 * A server on 127.0.0.1 in front of moto_server, for running the synthesized
 * state machine in moto's Step Functions engine. moto's engine calls every
 * service back on http://localhost:$MOTO_PORT (moto/stepfunctions/parser/asl/
 * utils/boto_client.py passes that endpoint_url to boto3 explicitly, so
 * AWS_ENDPOINT_URL_LAMBDA in moto's environment is ignored); started with
 * MOTO_PORT set to this server's port, the engine's calls come here.
 *
 * What it does with them:
 * - Lambda Invoke (POST /2015-03-31/functions/{name}/invocations) is answered
 *   here, by calling the real handler in this process, as the Node.js Lambda
 *   runtime would: the result as the payload, or a thrown error as
 *   `{errorType, errorMessage, trace}` with `X-Amz-Function-Error: Unhandled`.
 *   moto's own Lambda would need docker to run a function.
 * - Every other request is passed on to moto unchanged; `before` may answer
 *   one itself (a refusal), `after` may change moto's answer (a fault moto
 *   cannot produce), and every request is recorded by service and action.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';

export type LambdaHandler = (event: unknown) => unknown;

export interface FrontRequest {
  /** `lambda`, `ssm`, `events`, `ec2`, `monitoring`… (from the credential scope). */
  service: string;
  /** `SendCommand`, `PutEvents`, `DescribeSnapshots`, `Invoke`… */
  action: string;
  body: string;
}

export interface FrontAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class MotoFront {
  /** Every request received, in order. */
  readonly requests: FrontRequest[] = [];
  /** Lambda functions by name (the last part of the function's ARN). */
  readonly functions = new Map<string, LambdaHandler>();
  /** Answers a request instead of moto when it returns an answer. */
  before?: (request: FrontRequest) => FrontAnswer | undefined | Promise<FrontAnswer | undefined>;
  /** Changes moto's answer to a request. */
  after?: (request: FrontRequest, answer: FrontAnswer) => FrontAnswer;
  /** moto's own endpoint; set once moto listens. */
  upstream = '';

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<MotoFront> {
    let front: MotoFront | undefined;
    const server = createServer((request, response) => {
      front!.handle(request).then(
        (answer) => {
          response.writeHead(answer.status, answer.headers);
          response.end(answer.body);
        },
        (error: Error) => {
          response.writeHead(500, { 'content-type': 'text/plain' });
          response.end(`moto-front: ${error.stack ?? error.message}`);
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    front = new MotoFront(server, typeof address === 'object' && address ? address.port : 0);
    return front;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The requests received for one service and action. */
  received(service: string, action: string): FrontRequest[] {
    return this.requests.filter((r) => r.service === service && r.action === action);
  }

  private async handle(incoming: IncomingMessage): Promise<FrontAnswer> {
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = raw.toString('utf8');
    const path = incoming.url ?? '/';
    const invocation = /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(path);
    if (invocation) {
      const name = decodeURIComponent(invocation[1]!).split(':').pop()!;
      this.requests.push({ service: 'lambda', action: 'Invoke', body });
      return this.invoke(name, body);
    }
    const request: FrontRequest = { service: serviceOf(incoming), action: actionOf(incoming, body), body };
    this.requests.push(request);
    const refused = await this.before?.(request);
    if (refused) return refused;
    const headers = new Headers();
    for (const [key, value] of Object.entries(incoming.headers)) {
      if (typeof value === 'string' && key !== 'host' && key !== 'connection') headers.set(key, value);
    }
    const passed = await fetch(`${this.upstream}${path}`, {
      method: incoming.method ?? 'GET',
      headers,
      ...(incoming.method === 'GET' || incoming.method === 'HEAD' ? {} : { body: raw }),
    });
    const answered: FrontAnswer = { status: passed.status, headers: {}, body: await passed.text() };
    passed.headers.forEach((value, key) => {
      if (key !== 'content-length' && key !== 'transfer-encoding' && key !== 'content-encoding') {
        answered.headers[key] = value;
      }
    });
    return this.after ? this.after(request, answered) : answered;
  }

  private async invoke(name: string, body: string): Promise<FrontAnswer> {
    const handler = this.functions.get(name);
    const headers = { 'content-type': 'application/json', 'x-amz-executed-version': '$LATEST' };
    if (!handler) {
      return {
        status: 404,
        headers: { ...headers, 'x-amzn-errortype': 'ResourceNotFoundException' },
        body: JSON.stringify({
          Type: 'User',
          Message: `Function not found: ${name} (not bound in the test)`,
        }),
      };
    }
    try {
      const result = await handler(body ? JSON.parse(body) : {});
      return { status: 200, headers, body: JSON.stringify(result ?? null) };
    } catch (caught) {
      const error = caught instanceof Error ? caught : new Error(String(caught));
      // What the Node.js runtime answers for an error the handler throws.
      return {
        status: 200,
        headers: { ...headers, 'x-amz-function-error': 'Unhandled' },
        body: JSON.stringify({
          errorType: error.name,
          errorMessage: error.message,
          trace: (error.stack ?? '').split('\n'),
        }),
      };
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The service a signed request is for: the credential scope names it (…/region/service/aws4_request). */
function serviceOf(request: IncomingMessage): string {
  const authorization = String(request.headers.authorization ?? '');
  return /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\/aws4_request/.exec(authorization)?.[1] ?? 'unknown';
}

/** The action: X-Amz-Target for JSON protocols, Action= for query ones, the path for CBOR ones. */
function actionOf(request: IncomingMessage, body: string): string {
  const target = request.headers['x-amz-target'];
  if (typeof target === 'string') return target.split('.').pop()!;
  const operation = /\/operation\/([A-Za-z]+)$/.exec(request.url ?? '');
  if (operation) return operation[1]!;
  return /(?:^|&)Action=([A-Za-z]+)/.exec(body)?.[1] ?? 'unknown';
}
