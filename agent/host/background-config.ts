/**
 * The configuration a background process (the holder, the archiver, the
 * prefetcher) gets from the pgsnap that started it, as JSON in its argv:
 * checked against the schema of that process, so that a pgsnap of another
 * version, or a hand-made command line, is refused with what is wrong rather
 * than failing somewhere inside.
 */
import { PreconditionError } from '#domain/errors';
import * as z from '#domain/zod';

/** The repository a background process opens, as `RepositoryChoice` (host/repository.ts). */
export const repositoryChoiceSchema = z.strictObject({ url: z.string(), cluster: z.string() });

/** Parses `text` (argv's JSON) as the configuration of `process`, or says why not. */
export function backgroundConfig<T>(process: string, schema: z.ZodMiniType<T>, text: string | undefined): T {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch (error) {
    throw new PreconditionError(
      `pgsnap ${process}: its configuration is not JSON (${(error as Error).message})`,
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new PreconditionError(
      `pgsnap ${process}: its configuration is not valid (${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`)
        .join('; ')}); was it started by a pgsnap of another version?`,
    );
  }
  return parsed.data;
}
