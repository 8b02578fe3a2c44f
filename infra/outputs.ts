/** The stacks' outputs: what the CLI's hints and docs/restore.md send an operator to. */
import { CfnOutput } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

/** One CfnOutput per name: [value, description]. */
export function outputs(scope: Construct, values: Record<string, [string, string]>): void {
  for (const [name, [value, description]] of Object.entries(values)) {
    new CfnOutput(scope, name, { value, description });
  }
}
