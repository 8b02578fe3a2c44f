/**
 * A local S3 server (s3rver) on 127.0.0.1 for tests, with the two workarounds
 * from the toolchain notes: checksums only when required (stream bodies would
 * be stored with aws-chunked framing otherwise) and --openssl-legacy-provider
 * (set for vitest in vitest.config.ts; the s3rver child started here gets it
 * too) for its continuation tokens.
 *
 * The server can be stopped and started again on the same port with the same
 * data, to test what happens while the repository is unreachable.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const serverScript = resolve(import.meta.dirname, 's3-server.mjs');

// The SDK's Node 20 deprecation notice, once per process, is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const s3Credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class LocalS3 {
  private child: ChildProcess | undefined;

  private constructor(
    readonly directory: string,
    public port: number,
  ) {}

  /** Starts a server on a free port with an empty bucket. */
  static async start(bucket = 'pgsnap-test'): Promise<LocalS3> {
    const directory = mkdtempSync(join(tmpdir(), 'pgsnap-s3-'));
    chmodSync(directory, 0o700);
    const s3 = new LocalS3(directory, 0);
    await s3.resume();
    const client = s3.client();
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
    return s3;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The repository URL of `bucket/prefix` on this server. */
  url(prefix = 'repo', bucket = 'pgsnap-test'): string {
    return `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(this.endpoint)}&path-style=true&region=us-east-1`;
  }

  /** Environment for pgsnap and for anything else that talks to this server through the default chain. */
  get env(): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: s3Credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3Credentials.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    };
  }

  client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: s3Credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /**
   * Runs the server in a child process, so that stopping it drops every
   * connection at once, as an outage would.
   */
  async resume(): Promise<void> {
    if (this.child) return;
    const child = spawn(
      process.execPath,
      ['--openssl-legacy-provider', serverScript, this.directory, String(this.port)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.port = await new Promise<number>((resolvePort, reject) => {
      let text = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        text += chunk;
        const match = /listening on (\d+)/.exec(text);
        if (match) resolvePort(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
    });
  }

  /**
   * CPU time the server process has used so far, in ms (Linux: /proc), for
   * benches that run it on the cores they measure; undefined elsewhere.
   */
  cpuMs(): number | undefined {
    try {
      const fields = readFileSync(`/proc/${this.child?.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
    } catch {
      return undefined;
    }
  }

  /** Stops the server; its data stays for resume(). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    await new Promise<void>((done) => {
      child.once('exit', () => done());
      child.kill('SIGKILL');
    });
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.directory, { recursive: true, force: true });
  }
}
