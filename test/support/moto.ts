/**
 * `moto_server`, the maintained AWS emulator (moto 5.2.1), on 127.0.0.1 for
 * the contract tests: one server per test file on a free port, stopped by its
 * PID in afterAll, and killed when the test process exits whatever happened.
 *
 * Where moto_server is not installed, the suites skip and say how to install
 * it; with CI=true they fail instead, so that CI never passes without them.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { isRunning } from './processes.ts';

/** moto's default account: what static credentials that name no assumed role act as. */
export const motoAccount = '123456789012';

/** Static dummy credentials; moto accepts any. */
export const motoCredentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

const install = "pip install 'moto[server]==5.2.1'";

// The SDK's Node 20 deprecation notice, once per process, is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

function findMoto(): string | undefined {
  const probe = spawnSync('moto_server', ['--help'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error || probe.status !== 0) {
    return `moto_server is not installed (${probe.error?.message ?? probe.stderr.trim()}); install it with ${install}`;
  }
  return undefined;
}

/** Why moto cannot run here, or undefined when it can. */
export const motoMissing = findMoto();

/** Whether a suite against moto skips: only where moto is missing and this is not CI. */
export const skipWithoutMoto = motoMissing !== undefined && process.env.CI !== 'true';
if (skipWithoutMoto) console.warn(`skipping the moto contract tests: ${motoMissing}`);

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class Moto {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly output: { text: string },
  ) {}

  /** What moto printed so far (its request log and tracebacks), the first 1 MB: for failure messages. */
  get log(): string {
    return this.output.text;
  }

  /**
   * Starts moto_server on 127.0.0.1 on a free port; fails, saying how to
   * install it, where it is missing. The port is chosen here and given to moto
   * as MOTO_PORT too: its Step Functions engine calls the other services back
   * on that port. Another process may take the port in between: then moto
   * exits and the next free port is tried.
   *
   * `servicesPort` gives the engine another port to call back instead: a
   * server in front of moto that answers some calls itself (Lambda Invoke
   * without docker) and passes the rest on.
   */
  static async start(options: { servicesPort?: number } = {}): Promise<Moto> {
    if (motoMissing) throw new Error(motoMissing);
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        return await Moto.startOn(await freePort(), options.servicesPort);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  private static async startOn(port: number, servicesPort = port): Promise<Moto> {
    const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // No proxy or AWS settings of the caller's leak into the emulator.
      env: { PATH: process.env.PATH, HOME: process.env.HOME, MOTO_PORT: String(servicesPort) },
    });
    running.add(child);
    child.once('exit', () => running.delete(child));
    const log = { text: '' };
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`moto_server did not listen within 30 s; output:\n${output}`));
      }, 30_000);
      const read = (chunk: string) => {
        // werkzeug logs every request on stderr: it is read all along (or the pipe fills), kept only at first.
        if (log.text.length < 1_000_000) log.text += chunk;
        if (output.length < 100_000) output += chunk;
        if (output.includes(`Running on http://127.0.0.1:${port}`)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.setEncoding('utf8').on('data', read);
      child.stderr!.setEncoding('utf8').on('data', read);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`moto_server exited (${code}) before listening; output:\n${output}`));
      });
    });
    return new Moto(child, port, log);
  }

  /** Forgets every resource (POST /moto-api/reset); its configuration stays. */
  async reset(): Promise<void> {
    const answer = await fetch(`${this.endpoint}/moto-api/reset`, { method: 'POST' });
    if (!answer.ok) throw new Error(`moto-api/reset answered ${answer.status}: ${await answer.text()}`);
  }

  /** Sets moto's own configuration (POST /moto-api/config), e.g. to let Step Functions execute. */
  async configure(config: Record<string, unknown>): Promise<void> {
    const answer = await fetch(`${this.endpoint}/moto-api/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(config),
    });
    if (!answer.ok) throw new Error(`moto-api/config answered ${answer.status}: ${await answer.text()}`);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Options for any SDK v3 client: this endpoint, a region, the static credentials. */
  client(region = 'us-east-1', credentials = motoCredentials) {
    return { endpoint: this.endpoint, region, credentials, maxAttempts: 1 } as const;
  }

  /**
   * Environment under which clients the code makes itself (the Lambda
   * handlers' `new EC2Client({ region })`) talk to this server: the SDK
   * reads AWS_ENDPOINT_URL for every service.
   */
  get env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL: this.endpoint,
      AWS_ACCESS_KEY_ID: motoCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: motoCredentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
    };
  }

  /** Stops the server by its PID and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    process.kill(this.pid, 'SIGTERM');
    const forced = setTimeout(() => {
      if (isRunning(this.pid)) process.kill(this.pid, 'SIGKILL');
    }, 5_000);
    await exited;
    clearTimeout(forced);
  }
}

/** A port nothing listens on now, on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
