/** Schema validation at the edge, with one error type and messages that name the field. */
import { InvalidInputError } from './errors.ts';
import * as z from './zod.ts';

/** Parses `value` with `schema`; on failure throws InvalidInputError listing each wrong field by its path. */
export function parseWith<S extends z.ZodMiniType>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(top)'}: ${issue.message}`);
  throw new InvalidInputError(`${what} is not valid: ${problems.join('; ')}`);
}

/** JSON text, as an environment variable carries it: parsed, then checked against `schema`. */
export function jsonText<S extends z.ZodMiniType>(schema: S) {
  return z.pipe(
    z.pipe(
      z.string(),
      z.transform((text: string): unknown => JSON.parse(text)),
    ),
    schema,
  );
}
