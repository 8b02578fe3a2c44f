// Child process of LocalS3 (plain JavaScript, so that killing it kills the server itself, with no
// loader process in between): runs s3rver on 127.0.0.1 until killed. Arguments: directory, port (0 = free).
import S3rver from 's3rver';

const [directory, port] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), silent: true, directory });
const address = await server.run();
process.stdout.write(`listening on ${address.port}\n`);
