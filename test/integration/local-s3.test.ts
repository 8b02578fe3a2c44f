/**
 * The local S3 server the tests run on behaves like S3 where pgsnap's
 * correctness depends on it: an object is whole or absent, never part of
 * itself, while it is being written and after the server died in the middle
 * (s3rver alone fails both; test/support/s3-server.mjs mends it). Without
 * this, a test that stops the server under write load finds a damaged WAL
 * object that pgsnap rightly refuses to overwrite, and a fetch racing the
 * archiver reads half a segment.
 */
import http from 'node:http';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, expect, it } from 'vitest';
import { LocalS3 } from '../support/s3.ts';

let s3: LocalS3 | undefined;
afterEach(async () => {
  await s3?.destroy();
});

function get(port: number, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, bytes }));
      })
      .on('error', reject);
  });
}

it('never shows part of an object: not while it is written, not after the server died in the middle', async () => {
  s3 = await LocalS3.start();
  const port = s3.port;
  // Half of a 1000-byte body, then nothing more: the PUT is in flight.
  const put = http.request({
    host: '127.0.0.1',
    port,
    method: 'PUT',
    path: '/pgsnap-test/half-written',
    headers: { 'content-length': 1000 },
  });
  put.on('error', () => {}); // the server goes away under it
  put.write(Buffer.alloc(500, 1));
  await new Promise((r) => setTimeout(r, 300));
  expect(await get(port, '/pgsnap-test/half-written')).toMatchObject({ status: 404 });

  await s3.stop();
  await s3.resume();
  expect(await get(s3.port, '/pgsnap-test/half-written')).toMatchObject({ status: 404 });

  // A whole PUT is there, whole.
  const client = s3.client();
  await client.send(
    new PutObjectCommand({ Bucket: 'pgsnap-test', Key: 'whole', Body: Buffer.alloc(1000, 2) }),
  );
  client.destroy();
  expect(await get(s3.port, '/pgsnap-test/whole')).toEqual({ status: 200, bytes: 1000 });
});
