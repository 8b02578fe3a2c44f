// Child process of LocalS3 (plain JavaScript, so that killing it kills the server itself, with no
// loader process in between): runs s3rver on 127.0.0.1 until killed. Arguments: directory, port (0 = free).
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import S3rver from 's3rver';

// s3rver 3.7.1 writes an object in place, and answers the PUT before the file is complete: a GET meanwhile
// reads part of it, and a server killed in the middle keeps the part as the object. S3 never shows part of
// an object. So here an object is written beside its place and renamed there once complete (s3rver lists
// and finds objects by their name only, so the partial file is invisible).
const FilesystemStore = createRequire(import.meta.url)('s3rver/lib/stores/filesystem.js');
let partials = 0;
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const partial = `${objectPath}.partial-${process.pid}-${++partials}`;
  const md5 = createHash('md5');
  let size = 0;
  const body = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
  try {
    await pipeline(
      body,
      new Transform({
        transform(chunk, _encoding, callback) {
          md5.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      createWriteStream(partial),
    );
    const digest = md5.digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    await rename(partial, objectPath);
    return { size, md5: digest };
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
};

const [directory, port] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), silent: true, directory });
const address = await server.run();
process.stdout.write(`listening on ${address.port}\n`);
