/** `--help`: a command's usage on stdout, exit 0. */
export function printUsage(usage: string): number {
  process.stdout.write(`${usage}\n`);
  return 0;
}
