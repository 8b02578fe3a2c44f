/**
 * One Lambda handler from functions/, bundled by the local esbuild with the
 * pinned AWS SDK: the current Node.js runtime, ESM, structured JSON logs, a
 * log group with retention, X-Ray tracing.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import { ApplicationLogLevel, LoggingFormat, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct, IConstruct } from 'constructs';
import { acknowledge, wildcardReasons } from '../guards/acknowledge.ts';

/**
 * The project's root: the nearest directory above this file that holds functions/ (infra/lambda/ in the
 * checkout; dist/ once bundled into the synthesis `pgsnap demo` loads, one level less deep).
 */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'functions')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const root = projectRoot();

/**
 * How the handlers are bundled. The AWS SDK is bundled too, the versions
 * pinned in package.json, not left to the one the runtime happens to ship
 * (NodejsFunction's default `externalModules: ['@aws-sdk/*']`): the code needs
 * commands and parameters newer than some runtime releases have, such as
 * EC2 LockSnapshot and S3 PutObject's IfNoneMatch, and the versions it is
 * tested with are the ones that run.
 */
export const lambdaBundling = {
  format: OutputFormat.ESM,
  target: 'node24',
  minify: true,
  sourceMap: true,
  externalModules: [] as string[],
  // Bundled CommonJS dependencies call require(), which an ES module lacks.
  banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
};

export interface HandlerFunctionProps {
  /** The file in functions/ without extension, e.g. `create-snapshots`. */
  handler: string;
  description: string;
  environment?: Record<string, string>;
  timeout?: Duration;
  /** A role of the caller's, e.g. one with a fixed name that another account's policies can name. */
  role?: IRole;
}

export class HandlerFunction extends NodejsFunction {
  /** The file in functions/ it runs, e.g. `create-snapshots`. */
  readonly handlerName: string;

  constructor(scope: Construct, id: string, props: HandlerFunctionProps) {
    super(scope, id, {
      entry: join(root, 'functions', `${props.handler}.ts`),
      handler: 'handler',
      projectRoot: root,
      depsLockFilePath: join(root, 'package-lock.json'),
      runtime: Runtime.NODEJS_24_X,
      description: props.description,
      memorySize: 256,
      timeout: props.timeout ?? Duration.seconds(60),
      tracing: Tracing.ACTIVE,
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      logGroup: new LogGroup(scope, `${id}Logs`, {
        retention: RetentionDays.THREE_MONTHS,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      environment: props.environment ?? {},
      ...(props.role ? { role: props.role } : {}),
      bundling: lambdaBundling,
    });
    this.handlerName = props.handler;
    acknowledge(this, {
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
        "AWSLambdaBasicExecutionRole only lets the function write its own log streams; it is AWS's maintained minimum",
      'AwsSolutions-IAM5[Resource::*]': `${wildcardReasons.xray}; so do EC2 Describe* calls, which only read`,
    });
  }
}

/** The role ARNs of the Lambdas under `scope`: the orchestrator's principals, which record. */
export function lambdaRolesOf(scope: IConstruct): string[] {
  const roles = scope.node
    .findAll()
    .filter((c): c is HandlerFunction => c instanceof HandlerFunction)
    .map((fn) => fn.role!.roleArn);
  return [...new Set(roles)];
}
