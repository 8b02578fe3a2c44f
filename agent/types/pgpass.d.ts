/** The part of pgpass (pg's own password-file reader, no published types) that agent/postgres/pgpass.ts uses. */
declare module 'pgpass/lib/helper.js' {
  import type { Readable } from 'node:stream';

  const helper: {
    getFileName(env?: NodeJS.ProcessEnv): string;
    getPassword(
      connInfo: { host: string; port: number; database: string; user: string },
      stream: Readable,
      callback: (password: string | undefined) => void,
    ): void;
  };
  export default helper;
}
