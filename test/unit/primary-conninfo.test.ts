/**
 * A standby's primary_conninfo never carries a password: it would sit in the
 * restore record and postgresql.auto.conf. The restore request refuses one,
 * as do the agent's --primary-conninfo flags; a passfile is the way.
 */
import { expect, it } from 'vitest';
import { conninfoHasPassword, restoreRequestSchema } from '#domain/restore/request';
import { restorePrepareCommand } from '../../agent/commands/restore-prepare.ts';
import { restoreRequestFromFlags } from '../../agent/commands/restore-start.ts';

const withPassword = [
  'host=primary user=replicator password=secret',
  'host=primary user=replicator PASSWORD = secret',
  "host=primary password='se cret' user=replicator",
  'postgresql://replicator:secret@primary:5432/postgres',
  'postgres://replicator@primary/postgres?sslmode=require&password=secret',
];
const withoutPassword = [
  'host=primary user=replicator passfile=/var/lib/postgresql/.pgpass',
  'host=primary user=replicator application_name=password_less',
  'postgresql://replicator@primary:5432/postgres?passfile=/var/lib/postgresql/.pgpass',
];

const request = (primaryConninfo: string) => ({
  cluster: 'orders-db',
  instance: { instanceId: 'i-0123456789abcdef0' },
  mode: 'standby',
  primaryConninfo,
});

it.each(withPassword)('refuses a restore request whose primary_conninfo has a password: %s', (conninfo) => {
  expect(conninfoHasPassword(conninfo)).toBe(true);
  const parsed = restoreRequestSchema.safeParse(request(conninfo));
  expect(parsed.success).toBe(false);
  expect(JSON.stringify(parsed.error?.issues)).toContain('passfile');
});

it.each(withoutPassword)('accepts one that names a passfile or none: %s', (conninfo) => {
  expect(conninfoHasPassword(conninfo)).toBe(false);
  expect(restoreRequestSchema.safeParse(request(conninfo)).success).toBe(true);
});

it("refuses the agent's --primary-conninfo with a password, on the host and for the state machine", async () => {
  await expect(
    restorePrepareCommand([
      '--backup-id',
      '20260101T030000Z-a1b2c3',
      '--pgdata',
      '/nonexistent/pgdata',
      '--standby',
      '--primary-conninfo',
      'host=primary user=replicator password=secret',
    ]),
  ).rejects.toThrow(/passfile/);
  expect(() =>
    restoreRequestFromFlags(
      {
        'backup-id': '20260101T030000Z-a1b2c3',
        'instance-id': 'i-0123456789abcdef0',
        standby: true,
        'primary-conninfo': 'postgresql://replicator:secret@primary/postgres',
      } as never,
      'orders-db',
    ),
  ).toThrow(/passfile/);
});
