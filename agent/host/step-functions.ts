/**
 * The Step Functions client, in a module of its own so that commands load the
 * AWS SDK only when they talk to Step Functions (`await import('./step-functions.ts')`).
 */
export {
  SendTaskFailureCommand,
  SendTaskHeartbeatCommand,
  SendTaskSuccessCommand,
  SFNClient,
} from '@aws-sdk/client-sfn';
