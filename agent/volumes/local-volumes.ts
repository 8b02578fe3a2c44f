/**
 * Local volumes: how the one-machine harness (the local EC2 of `pgsnap demo`
 * and the tests, which have no NVMe EBS disks) tells the agent which EBS
 * volume id a directory or a loop device stands for. The environment variable
 * PGSNAP_LOCAL_VOLUMES names a JSON file:
 *
 *     {"volumes": [{"volumeId": "vol-0123…", "path": "/abs/dir", "device": "/dev/loop3"}]}
 *
 * - `pgsnap discover` / `begin --volumes`: a part of the cluster under `path`
 *   is held by that volume, mounted at `path` (its file system from findmnt
 *   when `path` is a mount, else `dir`).
 * - `pgsnap mount` (the local EC2's AttachVolume): the volume id resolves to
 *   this entry instead of an NVMe serial. With `device`, that block device is
 *   mounted like an attached disk; without, `path` is a directory (a writable
 *   btrfs clone, a copy) bound at the mount point as root, or linked there by
 *   a symlink when pgsnap does not run as root.
 */
import { readFileSync } from 'node:fs';
import { PreconditionError } from '#domain/errors';
import * as z from '#domain/zod';
import { fromEnvironment, localVolumesVariable } from '../host/settings.ts';

export { localVolumesVariable };

const localVolumeSchema = z.strictObject({
  volumeId: z.string().check(z.regex(/^vol-[0-9a-f]{8,17}$/, 'a volume id such as vol-0123456789abcdef0')),
  path: z.string().check(z.regex(/^\//, 'an absolute path')),
  device: z.optional(z.string().check(z.regex(/^\/dev\//, 'a block device under /dev'))),
});
export type LocalVolume = z.infer<typeof localVolumeSchema>;

const localVolumesSchema = z.strictObject({ volumes: z.array(localVolumeSchema) });

/** The entries of the file PGSNAP_LOCAL_VOLUMES names; none when it is unset. */
export function localVolumes(env: NodeJS.ProcessEnv = process.env): LocalVolume[] {
  const file = fromEnvironment('localVolumes', env);
  if (!file) return [];
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new PreconditionError(
      `${localVolumesVariable}=${file} cannot be read as JSON (${(error as Error).message}); ` +
        'point it at a file {"volumes":[{"volumeId":"vol-…","path":"/abs/dir"}]}, or unset it on an EC2 host',
    );
  }
  const parsed = localVolumesSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new PreconditionError(`${localVolumesVariable}=${file} is not valid: ${problems.join('; ')}`);
  }
  return parsed.data.volumes;
}
