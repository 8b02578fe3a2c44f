/**
 * The agent's version: package.json's, read by both builds (the bundle, agent/build.mjs, and the single
 * executable, agent/package.mjs, each inline package.json), so `pgsnap --version` and `pgsnap doctor` say the
 * same in either.
 */
import { version } from '../package.json';

export const agentVersion: string = version;
