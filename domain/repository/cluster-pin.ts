/**
 * `<repo>/<cluster>/cluster.json`: pins a cluster name to one PostgreSQL
 * cluster, by the system identifier initdb gave it. WAL segment names repeat
 * from cluster to cluster (000000010000000000000001 exists everywhere), so
 * without the pin a second cluster archiving under the same name would mix its
 * WAL into the first one's and make both unrestorable.
 */
import * as z from '../zod.ts';
import { ClusterMismatchError, ManifestInvalidError } from './errors.ts';
import { type WalCodec, walCodecs } from './wal-object.ts';

export const clusterPinSchema = z.strictObject({
  schemaVersion: z.literal(1),
  cluster: z.string(),
  systemIdentifier: z.string().check(z.regex(/^\d+$/)),
  /** Major version, as in PG_VERSION ("15", "9.6"); informative: a new major has a new system identifier. */
  pgVersion: z.optional(z.string()),
  walSegmentSize: z.int().check(z.positive()),
  walCompression: z.enum(walCodecs),
  createdAt: z.iso.datetime(),
  createdBy: z.string(),
});

export type ClusterPin = z.infer<typeof clusterPinSchema>;

/** What a writer knows about the cluster it writes for. */
export interface ClusterIdentity {
  systemIdentifier: string;
  walSegmentSize: number;
  pgVersion?: string;
}

/** The codec a new cluster's WAL is stored with. */
export const newPinCodec: WalCodec = 'zstd';

export function newClusterPin(cluster: string, identity: ClusterIdentity, createdBy: string): ClusterPin {
  const codec = newPinCodec;
  return {
    schemaVersion: 1,
    cluster,
    systemIdentifier: identity.systemIdentifier,
    ...(identity.pgVersion ? { pgVersion: identity.pgVersion } : {}),
    walSegmentSize: identity.walSegmentSize,
    walCompression: codec,
    createdAt: new Date().toISOString(),
    createdBy,
  };
}

export function parseClusterPin(bytes: Buffer, where: string): ClusterPin {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ManifestInvalidError(`${where} is not JSON; it was truncated or edited`);
  }
  const parsed = clusterPinSchema.safeParse(value);
  if (!parsed.success) {
    throw new ManifestInvalidError(`${where} is not a valid cluster.json: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** Refuses to write for a cluster that is not the pinned one. */
export function checkClusterPin(pin: ClusterPin, identity: ClusterIdentity, where: string): void {
  if (pin.systemIdentifier !== identity.systemIdentifier) {
    throw new ClusterMismatchError(
      `${where} belongs to the cluster with system identifier ${pin.systemIdentifier}` +
        `${pin.pgVersion ? ` (PostgreSQL ${pin.pgVersion})` : ''}, pinned ${pin.createdAt}; this cluster's ` +
        `system identifier is ${identity.systemIdentifier}. Nothing was written. Give this cluster its own ` +
        'name with --cluster / PGSNAP_CLUSTER (a new initdb or pg_upgrade makes a new cluster).',
    );
  }
  if (pin.walSegmentSize !== identity.walSegmentSize) {
    throw new ClusterMismatchError(
      `${where} was pinned with ${pin.walSegmentSize}-byte WAL segments but this cluster uses ` +
        `${identity.walSegmentSize}; give this cluster its own name with --cluster`,
    );
  }
}
