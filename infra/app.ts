/** The CDK app: one pgsnap stack per environment of the configuration (cdk.json context "pgsnap:config"). */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from './config/config.ts';
import { DrStack } from './dr-stack.ts';
import { PgsnapStack } from './pgsnap-stack.ts';

const app = new App();
// Synthesis fails on any cdk-nag finding that is not acknowledged with its reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
const config = loadConfig(app.node.tryGetContext('pgsnap:config') ?? 'pgsnap.config.json');
for (const environment of config.environments) {
  new PgsnapStack(app, `pgsnap-${environment.name}`, { environment });
  // Deployed in the DR account and region, before the source stack (README "Cross-account DR").
  if (environment.dr) new DrStack(app, `pgsnap-${environment.name}-dr`, { environment });
}
