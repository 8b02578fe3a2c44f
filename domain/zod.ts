/**
 * zod for everything the agent bundle validates, in its small build
 * (zod/mini): every pgsnap start loads it, and archive_command and
 * restore_command start pgsnap once per file unless the fast path answers.
 * The full zod is one 580 KB chunk that takes 40 to 45 ms to load on these
 * machines, whatever part of it a command uses; zod/mini bundles only what is
 * used. (infra/, built apart for cdk synth, keeps the full zod.) With zod's
 * English messages, which zod/mini leaves out.
 */
import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

config(en());

// Re-exported name by name (import * as z from here): a namespace object passed on whole would keep all of
// zod/mini in the bundle, every locale included.
export * from 'zod/mini';
