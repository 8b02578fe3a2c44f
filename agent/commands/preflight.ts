/** `pgsnap preflight`: can a backup start and end here? */
import { parse } from '../cli/args.ts';
import { printUsage } from '../cli/usage.ts';
import { createContext } from '../host/context.ts';
import { connect } from '../postgres/client.ts';
import { preflight } from '../session/preflight.ts';

export const preflightUsage = `pgsnap preflight [--json]

Checks the role's rights, wal_level, archive_mode, the archive command and the
archiver's health. Exits 3 when a backup could not be taken.`;

export async function preflightCommand(args: string[]): Promise<number> {
  const { values } = parse('preflight', args, {});
  if (values.help) return printUsage(preflightUsage);
  const ctx = createContext(values);
  const client = await connect();
  try {
    const report = await preflight(client);
    const lines = report.findings.map(
      (f) => `${f.ok ? 'ok  ' : f.severity === 'error' ? 'FAIL' : 'warn'}  ${f.check}: ${f.message}`,
    );
    lines.push(
      report.ok ? 'a backup can be taken' : 'a backup cannot be taken until the failures above are fixed',
    );
    ctx.out.result(
      {
        ok: report.ok,
        serverVersion: report.facts.version,
        systemIdentifier: report.facts.systemIdentifier,
        inRecovery: report.facts.inRecovery,
        findings: report.findings,
      },
      lines,
    );
    return report.ok ? 0 : 3;
  } finally {
    await client.end();
  }
}
