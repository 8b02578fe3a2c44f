/**
 * A cluster made the way Debian and operators make them, not the way pgsnap's
 * own fixtures do: peer authentication on the local socket and scram-sha-256
 * on 127.0.0.1, the logging collector writing into PGDATA/log, PostgreSQL's
 * default hot-standby settings with max_connections and max_worker_processes
 * raised above any default, the data in an `app` database, and a password
 * role `pgsnap` with the backup grants, reached through a pgpass file.
 * Once made, root can no longer connect as `postgres` (peer auth): the test
 * reaches the cluster as pgsnap would, or as the operator does with
 * `runuser -u postgres psql`.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asPostgres, Cluster, clientBin, type Major } from './cluster.ts';

export interface OperatorCluster {
  cluster: Cluster;
  /** libpq environment of the `pgsnap` role: TCP on 127.0.0.1, the password from PGPASSFILE. */
  env: NodeJS.ProcessEnv;
  /** Runs SQL as the operator does (`runuser -u postgres psql`, through peer auth); returns psql's unaligned output. */
  psql(sql: string, database?: string): string;
}

/** Debian's pg_hba.conf (postgresql-common's createcluster). */
const debianHba = `local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
`;

const password = 'operator chose this';

/** The backup grants `pgsnap preflight` asks for, on PostgreSQL 15 and later. */
const grants = [
  'GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO pgsnap',
  'GRANT pg_monitor TO pgsnap',
  'GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO pgsnap',
];

export async function operatorCluster(options: {
  major: Major;
  /** archive_command, quoted for postgresql.conf (TestRepository.archiveCommand()). */
  archiveCommand: string;
  settings?: Record<string, string>;
}): Promise<OperatorCluster> {
  const cluster = await Cluster.create({
    major: options.major,
    settings: {
      archive_command: options.archiveCommand,
      // PostgreSQL's defaults (pgsnap's own fixtures lower max_wal_senders), and values no default has.
      max_wal_senders: '10',
      max_connections: '150',
      max_worker_processes: '12',
      fsync: 'on',
      logging_collector: 'on',
      log_directory: "'log'",
      ...options.settings,
    },
  });
  try {
    await cluster.query('CREATE DATABASE app');
    await cluster.query(`CREATE ROLE pgsnap LOGIN PASSWORD '${password}'`);
    // Function privileges belong to a database: the one pgsnap connects to.
    for (const grant of grants) await cluster.query(grant, [], 'app');
    await cluster.query(
      `CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE);
       CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL REFERENCES customers, total numeric);
       CREATE INDEX ON orders (customer);
       INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
       INSERT INTO orders SELECT g, 1 + g % 2000, g * 1.5 FROM generate_series(1, 20000) g;`,
      [],
      'app',
    );
    writeFileSync(join(cluster.dataDir, 'pg_hba.conf'), debianHba);
    await cluster.query('SELECT pg_reload_conf()');
  } catch (error) {
    cluster.destroy();
    throw error;
  }
  const passFile = join(cluster.root, 'pgpass');
  writeFileSync(passFile, `127.0.0.1:${cluster.port}:*:pgsnap:${password}\n`, { mode: 0o600 });
  chmodSync(passFile, 0o600);
  const psqlBin = clientBin('psql');
  if (!psqlBin) throw new Error('the operator-made cluster needs psql (the postgresql-client package)');
  return {
    cluster,
    env: {
      PGHOST: '127.0.0.1',
      PGPORT: String(cluster.port),
      PGUSER: 'pgsnap',
      PGDATABASE: 'app',
      PGPASSFILE: passFile,
    },
    psql: (sql, database = 'app') =>
      asPostgres(psqlBin, [
        '-h',
        cluster.socketDir,
        '-p',
        String(cluster.port),
        '-d',
        database,
        '-X',
        '-At',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ]).stdout.trim(),
  };
}
