/** `npm run docs`: writes docs/settings.md, the agent's settings table, from the settings module. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { settingsTable } from './settings.ts';

const page = `# Agent settings

Generated from agent/host/settings.ts by \`npm run docs\`: do not edit by hand.
A flag wins over its variable, a variable over the default. Durations read
\`90s\`, \`10m\`, \`2h\` or \`1h30m\`; --recovery-timeout also takes a bare number of seconds.

${settingsTable()}
`;
mkdirSync('docs', { recursive: true });
writeFileSync('docs/settings.md', page);
