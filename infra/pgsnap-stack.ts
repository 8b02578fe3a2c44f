/** One stack per configured environment: `pgsnap-<name>`. */
import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from './config/config.ts';
import { Pgsnap } from './pgsnap.ts';

export interface PgsnapStackProps extends StackProps {
  environment: EnvironmentConfig;
}

export class PgsnapStack extends Stack {
  readonly pgsnap: Pgsnap;

  constructor(scope: Construct, id: string, props: PgsnapStackProps) {
    const { environment, ...stackProps } = props;
    super(scope, id, {
      description: `pgsnap snapshot backups of PostgreSQL (${environment.name})`,
      ...(environment.account || environment.region
        ? { env: { account: environment.account, region: environment.region } }
        : {}),
      ...stackProps,
    });
    this.pgsnap = new Pgsnap(this, 'Pgsnap', { environment });
  }
}
