/** The agent's version, stamped into the bundle by agent/build.mjs from package.json. */
declare const __PGSNAP_VERSION__: string | undefined;

export const agentVersion: string =
  typeof __PGSNAP_VERSION__ === 'string' ? __PGSNAP_VERSION__ : 'unbundled (a development checkout)';
