/** The CDK app: one pgsnap stack per environment of the configuration (cdk.json context "pgsnap:config"). */
import { App } from 'aws-cdk-lib';
import { loadConfig } from './config.ts';
import { PgsnapStack } from './pgsnap-stack.ts';

const app = new App();
const config = loadConfig(app.node.tryGetContext('pgsnap:config') ?? 'pgsnap.config.json');
for (const environment of config.environments) {
  new PgsnapStack(app, `pgsnap-${environment.name}`, { environment });
}
