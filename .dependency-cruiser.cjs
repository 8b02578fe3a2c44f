/**
 * Which folder may import which: the layering DESIGN.md describes, checked by `npm run check`.
 * Lower layers never import higher ones; the agent never imports the harness, the Lambdas or the CDK app.
 */
const layer = (from, to, name, comment) => ({
  name,
  comment,
  severity: 'error',
  from: { path: from },
  to: { path: to },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import circle: split the shared part out below both.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    layer(
      '^domain/',
      '^(agent|local|functions|infra|bench|test)/',
      'domain-is-the-bottom',
      'domain/ is shared by the agent and the Lambdas: it imports neither.',
    ),
    layer(
      '^domain/[^/]+\\.ts$',
      '^domain/[^/]+/',
      'domain-root-below-folders',
      "domain/'s own files (errors, ids, zod, parse) sit below its folders.",
    ),
    layer(
      '^domain/wal/',
      '^domain/(repository|backup|ebs|restore)/',
      'domain-wal-layer',
      'wal/ sits below repository/.',
    ),
    layer(
      '^domain/repository/',
      '^domain/(backup|ebs|restore)/',
      'domain-repository-layer',
      'repository/ sits below backup/ and restore/: ids live in domain/ids.ts.',
    ),
    layer(
      '^domain/backup/',
      '^domain/(ebs|restore)/',
      'domain-backup-layer',
      'backup/ sits below ebs/ and restore/.',
    ),
    layer('^domain/ebs/', '^domain/restore/', 'domain-ebs-layer', 'ebs/ sits below restore/.'),
    layer(
      '^functions/',
      '^(agent|local|infra|bench|test)/',
      'functions-use-domain',
      'A Lambda handler calls domain/ only.',
    ),
    layer(
      '^infra/',
      '^(agent|local|bench|test)/',
      'infra-not-the-agent',
      'The CDK app does not import the agent or the harness.',
    ),
    layer(
      '^agent/',
      '^(local|functions|infra|bench|test)/',
      'agent-is-standalone',
      'The agent never imports local/, functions/ or infra/.',
    ),
    layer(
      '^agent/(?!cli/|commands/)',
      '^agent/(cli|commands)/',
      'agent-below-the-cli',
      'Use cases sit below the commands and the CLI: move what they share into agent/host/.',
    ),
    layer(
      '^agent/commands/',
      '^agent/cli/main\\.ts$',
      'commands-below-main',
      'A command does not import the entry point.',
    ),
    {
      name: 'no-command-imports-a-command',
      comment: 'Commands are one file each; what two share belongs below them.',
      severity: 'error',
      from: { path: '^agent/commands/([^/]+)\\.ts$' },
      to: { path: '^agent/commands/', pathNot: '^agent/commands/$1\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|cdk\\.out)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.mjs', '.js', '.json'],
    },
  },
};
