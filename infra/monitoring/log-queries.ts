/**
 * Saved CloudWatch Logs Insights queries over the Lambdas' logs, whose lines
 * functions/commons/logged.ts writes: one per step, keyed by cluster and
 * backupId, failures with their error's name, cause and AWS request id.
 */
import { QueryDefinition, QueryString } from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import { HandlerFunction } from '../lambda/handler-function.ts';

export interface BackupLogQueriesProps {
  environment: string;
  /** Every HandlerFunction under it is searched. */
  functionsUnder: IConstruct;
}

/** Logs Insights has no parameters: the operator replaces this with the backupId in the console. */
export const backupIdPlaceholder = 'BACKUP-ID';

export class BackupLogQueries extends Construct {
  constructor(scope: Construct, id: string, props: BackupLogQueriesProps) {
    super(scope, id);
    const functions = props.functionsUnder.node
      .findAll()
      .filter((c): c is HandlerFunction => c instanceof HandlerFunction);
    new QueryDefinition(this, 'EverythingAboutBackup', {
      queryDefinitionName: `pgsnap-${props.environment}/everything about backup ${backupIdPlaceholder}`,
      queryString: new QueryString({
        fields: [
          '@timestamp',
          'step',
          'level',
          'message',
          'cluster',
          'backupId',
          'state',
          'function_request_id',
          'error.name',
          'error.message',
          'error.cause.message',
          'error.$metadata.requestId',
        ],
        filterStatements: [`backupId = "${backupIdPlaceholder}"`],
        sort: '@timestamp asc',
      }),
      logGroups: functions.map((fn) => fn.logGroup),
    });
  }
}
