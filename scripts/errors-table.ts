/**
 * docs/errors.md's tables, made from the code so they cannot fall behind it: every error class in domain/,
 * agent/ and functions/ that names itself (`override name = '…'`), with the exit code its base class gives
 * and the two paragraphs of its doc comment (when it appears; "What to do: …"), and every other error name
 * the state machines' Retry and Catch match (found in infra/), with its meaning written here. A class
 * without a "What to do:" paragraph, or a Retry name that is neither a class nor described here, stops
 * `npm run docs`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..');

/** An error class that names itself: what docs/errors.md says of it. */
export interface ErrorClass {
  name: string;
  base: string;
  /** Where it is declared, from the project's root. */
  file: string;
  when: string;
  whatToDo: string;
}

/**
 * Error names the state machines match that no pgsnap class makes: AWS's own, and Step Functions' (which
 * an operator meets in an execution's history whether or not a Retry names them).
 */
const otherNames: Record<string, { when: string; whatToDo: string; always?: true }> = {
  RequestLimitExceeded: {
    when: "EC2 throttled the account's API requests.",
    whatToDo:
      'Retried by the step; met only once the retries ran out. Start fewer backups and restores at once in the account, or ask AWS for a higher EC2 API rate.',
  },
  InternalError: {
    when: 'EC2 failed the request on its side.',
    whatToDo: 'Retried by the step; once the retries ran out, start the execution again.',
  },
  ServiceUnavailable: {
    when: 'EC2 could not take the request at the moment.',
    whatToDo: 'Retried by the step; once the retries ran out, start the execution again.',
  },
  SnapshotCreationPerVolumeRateExceeded: {
    when: 'EC2 refused another snapshot of a volume this soon after the last one.',
    whatToDo: "Retried by the step; if it still fails, space the cluster's schedules further apart.",
  },
  'Lambda.TooManyRequestsException': {
    when: "Lambda throttled the step's function (the account's or function's concurrency is used up).",
    whatToDo: "Retried by the step; if it still fails, raise the account's Lambda concurrency.",
  },
  'Ssm.ThrottlingException': {
    when: "Systems Manager throttled the account's SendCommand requests.",
    whatToDo:
      'Retried by the step with full jitter; met only once the retries ran out. Start fewer restores or backups at once in the account.',
  },
  'Ssm.InternalServerErrorException': {
    when: 'Systems Manager failed the request on its side.',
    whatToDo: 'Retried by the step; once the retries ran out, start the execution again.',
  },
  'Ssm.InvalidInstanceIdException': {
    when: "The restore's target instance is not registered with SSM (yet): a launched instance's SSM agent registers a minute or two after it runs.",
    whatToDo:
      'Retried for five minutes; after that, check that the SSM agent runs on the instance and that its role has `AmazonSSMManagedInstanceCore`.',
  },
  Error: {
    when: 'Anything pgsnap has no name for: a failure of the system or a library, or a bug.',
    whatToDo: 'Read the message; if it points at pgsnap itself, report it with the command and its output.',
    always: true,
  },
  'States.HeartbeatTimeout': {
    when: 'The host sent no heartbeat within `timeouts.heartbeatSeconds`: the agent or its host is gone.',
    whatToDo:
      "Check the host and the SSM command's output (Run Command history); the cleanup path has aborted what it could.",
    always: true,
  },
  'States.Timeout': {
    when: 'A step on the host ran past `timeouts.hostCommandSeconds`, or the execution past its own timeout.',
    whatToDo:
      'Check what the host was waiting for (a spread checkpoint, the archive wait) and raise the timeout if the work needs longer.',
    always: true,
  },
};

/** The exit codes of domain/errors.ts exitCodeFor, by the class that gives them. */
const exitCodeOfBase: Record<string, number> = { UsageError: 2, PreconditionError: 3 };

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

function parse(path: string): ts.SourceFile {
  return ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true);
}

/** The text of a node's doc comment, its `*` margins taken off. */
function docComment(node: ts.Node, source: ts.SourceFile): string {
  const ranges = ts.getLeadingCommentRanges(source.text, node.getFullStart()) ?? [];
  const last = ranges.at(-1);
  const text = last ? source.text.slice(last.pos, last.end) : '';
  if (!text.startsWith('/**')) return '';
  return text
    .replace(/^\/\*\*|\*\/$/g, '')
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, '').trimEnd())
    .join('\n')
    .trim();
}

function selfName(node: ts.ClassDeclaration): string | undefined {
  for (const member of node.members) {
    if (
      ts.isPropertyDeclaration(member) &&
      member.name.getText() === 'name' &&
      member.initializer &&
      ts.isStringLiteral(member.initializer)
    ) {
      return member.initializer.text;
    }
  }
  return undefined;
}

/** Every error class in domain/, agent/ and functions/ that sets its name, sorted by name. */
export function errorClasses(): ErrorClass[] {
  const found: ErrorClass[] = [];
  for (const folder of ['domain', 'agent', 'functions']) {
    for (const path of sourceFiles(join(root, folder))) {
      const source = parse(path);
      source.forEachChild((node) => {
        if (!ts.isClassDeclaration(node) || !node.name) return;
        const base = node.heritageClauses
          ?.find((clause) => clause.token === ts.SyntaxKind.ExtendsKeyword)
          ?.types[0]?.expression.getText(source);
        const name = selfName(node);
        if (!base || !name) return;
        const file = relative(root, path);
        const [when = '', ...rest] = docComment(node, source).split(/\n\s*\n/);
        const whatToDo = rest.join(' ').match(/^What to do:\s*([\s\S]*)$/)?.[1];
        if (!when || !whatToDo) {
          throw new Error(
            `${file}: ${name}'s doc comment needs two paragraphs, when it appears and "What to do: …"`,
          );
        }
        const flat = (text: string) => text.replace(/\s*\n\s*/g, ' ');
        found.push({ name, base, file, when: flat(when), whatToDo: flat(whatToDo) });
      });
    }
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** Every error name a Retry or Catch of the state machines matches (`errors: [...]` in infra/), but `States.ALL`. */
export function stateMachineErrorNames(): Set<string> {
  const names = new Set<string>();
  for (const path of sourceFiles(join(root, 'infra'))) {
    const visit = (node: ts.Node): void => {
      if (
        ts.isPropertyAssignment(node) &&
        node.name.getText() === 'errors' &&
        ts.isArrayLiteralExpression(node.initializer)
      ) {
        for (const element of node.initializer.elements) {
          if (ts.isStringLiteral(element) && element.text !== 'States.ALL') names.add(element.text);
        }
      }
      node.forEachChild(visit);
    };
    visit(parse(path));
  }
  return names;
}

/** The exit code the CLI gives an error (domain/errors.ts exitCodeFor): its own class's or the nearest base's. */
function exitCodeOf(error: ErrorClass, byName: Map<string, ErrorClass>): number {
  for (let name: string | undefined = error.name; name; name = byName.get(name)?.base) {
    const code = exitCodeOfBase[name];
    if (code !== undefined) return code;
  }
  return 1;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

/** docs/errors.md's generated part: the pgsnap errors' table, then the other names'. */
export function errorsTable(): string {
  const classes = errorClasses();
  const byName = new Map(classes.map((error) => [error.name, error]));
  const retried = stateMachineErrorNames();
  const undescribed = [...retried].filter((name) => !byName.has(name) && !otherNames[name]);
  if (undescribed.length > 0) {
    throw new Error(
      `the state machines match ${undescribed.join(', ')}: describe ${undescribed.length > 1 ? 'them' : 'it'} in scripts/errors-table.ts (otherNames)`,
    );
  }
  const out = [
    '| name | exit code | when it appears | what to do |',
    '| --- | --- | --- | --- |',
    ...classes.map((error) => {
      const retry = retried.has(error.name) ? ' (retried by the state machines)' : '';
      return `| \`${error.name}\`${retry} | ${exitCodeOf(error, byName)} | ${cell(error.when)} | ${cell(error.whatToDo)} |`;
    }),
    '',
    'Names from AWS and Step Functions that the state machines match or show:',
    '',
    '| name | when it appears | what to do |',
    '| --- | --- | --- |',
    ...Object.entries(otherNames)
      .filter(([name, about]) => about.always || retried.has(name))
      .map(([name, about]) => `| \`${name}\` | ${cell(about.when)} | ${cell(about.whatToDo)} |`),
  ];
  return out.join('\n');
}
