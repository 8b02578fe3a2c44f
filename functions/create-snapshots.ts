/** Lambda for "Snapshot the cluster's volumes". */
import { EC2Client } from '@aws-sdk/client-ec2';
import { createSnapshotSet, type SnapshotSet } from '#domain/ebs/snapshots';
import { PreconditionError } from '#domain/errors';
import { parseWith } from '#domain/parse';
import * as z from '#domain/zod';

const eventSchema = z.object({
  cluster: z.string(),
  backupId: z.string(),
  instanceId: z.string(),
  /** From the configuration; when empty, the volumes that begin reported. */
  volumeIds: z.array(z.string()),
  begin: z.object({
    volumes: z.optional(z.array(z.object({ volumeId: z.string() }))),
    /** What `pgsnap begin --volumes` could not place on an EBS volume. */
    problems: z.optional(z.array(z.string())),
  }),
});

/** The handler with its EC2 client given: AWS's in Lambda, the local volumes' in `pgsnap demo`. */
export const createSnapshotsHandler =
  (ec2: EC2Client) =>
  async (event: unknown): Promise<SnapshotSet> => {
    const request = parseWith(eventSchema, event, 'the create-snapshots event');
    if (request.volumeIds.length > 0) return createSnapshotSet(ec2, request);
    // Without configured volumeIds, the volumes the host found; a part it could not place makes the set incomplete.
    const problems = request.begin.problems ?? [];
    if (problems.length > 0) {
      throw new PreconditionError(
        `the host cannot tell every EBS volume of ${request.cluster}: ${problems.join('; ')}`,
      );
    }
    return createSnapshotSet(ec2, {
      ...request,
      volumeIds: (request.begin.volumes ?? []).map((v) => v.volumeId),
    });
  };

export const handler = createSnapshotsHandler(new EC2Client({}));
