/**
 * The cluster catalog (domain/catalog.ts) as the stack deploys it: one JSON
 * object in a repository bucket, under `_pgsnap/catalog-<hash>.json` (a
 * cluster name never starts with `_`, so no cluster's prefix holds it),
 * written by a custom resource at deploy. The Lambdas that read it get its URL
 * in `PGSNAP_CATALOG` and read rights on that one key; a new catalog is a new
 * key, so the functions' configuration changes with it and no container keeps
 * an old one. A Lambda environment holds 4 KB; this holds every cluster.
 *
 * The body travels gzipped (base64) in the custom resource's properties, with
 * each deploy-time value (a bucket name) as a marker the writer replaces: at
 * 500 clusters the JSON is about 228 KB, and an update's request carries the
 * old properties beside the new, past what an asynchronous Lambda invocation
 * is held to (guards/aws-limits.ts); gzipped it is a few dozen KB, and the
 * template keeps the rest of its 1 MB.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { CustomResource, Stack, Token } from 'aws-cdk-lib';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { CatalogCluster, CatalogDiscovery, CatalogInput } from '#domain/catalog';
import { acknowledge, bucketFinding } from '../guards/acknowledge.ts';
import { customResourceRequestViolations } from '../guards/aws-limits.ts';
import { HandlerFunction } from '../lambda/handler-function.ts';
import type { ClusterConfig } from './config.ts';

export interface ClusterCatalogProps {
  /** The bucket that holds it: the stack's repository bucket. */
  bucket: IBucket;
  clusters: CatalogCluster[];
  discover?: CatalogDiscovery | undefined;
  /** What report-backup-age checks of each cluster (infra/monitoring/backup-age.ts `freshnessOf`). */
  freshness?: Record<string, unknown> | undefined;
}

/** Where catalogs live in their bucket. */
export const catalogPrefix = '_pgsnap/catalog-';

/** The longest deploy-time value a marker may stand for: a bucket name (S3: 3–63 characters). */
const deployedValueBytes = 63;

/**
 * `text` with each deploy-time value (a CDK token) as a marker `{{pgsnap:<n>}}`, and the values by marker, for
 * the writer to put back (functions/write-catalog.ts).
 */
function withMarkers(text: string): { text: string; substitutions: Record<string, string> } {
  const substitutions: Record<string, string> = {};
  const markerOf = new Map<string, string>();
  const marked = text.replace(/\$\{Token\[[^\]]+\]\}/g, (token) => {
    let marker = markerOf.get(token);
    if (!marker) {
      marker = `{{pgsnap:${markerOf.size}}}`;
      markerOf.set(token, marker);
      substitutions[marker] = token;
    }
    return marker;
  });
  if (Token.isUnresolved(marked))
    throw new Error(`the catalog holds a value that is no string token: ${marked}`);
  return { text: marked, substitutions };
}

export class ClusterCatalog extends Construct {
  /** `s3://<bucket>/_pgsnap/catalog-<hash>.json`, for PGSNAP_CATALOG. */
  readonly url: string;
  readonly key: string;
  /** The bucket that holds it: the stack's repository bucket. */
  readonly bucket: IBucket;

  constructor(scope: Construct, id: string, props: ClusterCatalogProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const catalog: CatalogInput = {
      schemaVersion: 1,
      clusters: props.clusters,
      ...(props.discover ? { discover: props.discover } : {}),
      ...(props.freshness ? { freshness: props.freshness } : {}),
    };
    // Named after its content as deployed (tokens resolved to their references), so that the name changes
    // exactly when the catalog does.
    const hash = createHash('sha256')
      .update(JSON.stringify(stack.resolve(catalog)))
      .digest('hex')
      .slice(0, 16);
    this.key = `${catalogPrefix}${hash}.json`;
    this.bucket = props.bucket;
    this.url = `s3://${props.bucket.bucketName}/${this.key}`;

    const writer = new HandlerFunction(this, 'Writer', {
      handler: 'write-catalog',
      description: "pgsnap: writes the stack's cluster catalog into its repository bucket at deploy",
    });
    writer.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:PutObject'], resources: [props.bucket.arnForObjects(this.key)] }),
    );
    writer.addToRolePolicy(
      new PolicyStatement({
        actions: ['s3:DeleteObject'],
        resources: [props.bucket.arnForObjects(`${catalogPrefix}*`)],
      }),
    );
    // SSE-KMS: a PutObject makes a data key under the bucket's key.
    props.bucket.encryptionKey?.grant(writer, 'kms:GenerateDataKey');
    acknowledge(writer, {
      [`AwsSolutions-IAM5[Resource::${bucketFinding(props.bucket)}/${catalogPrefix}*]`]:
        "deletes the stack's earlier catalogs, named after their content, once a deployment has written the new one",
    });
    const { text, substitutions } = withMarkers(JSON.stringify(catalog));
    const body = gzipSync(text, { level: 9 }).toString('base64');
    new CustomResource(this, 'Object', {
      serviceToken: writer.functionArn,
      resourceType: 'Custom::PgsnapCatalog',
      properties: {
        Bucket: props.bucket.bucketName,
        Key: this.key,
        Body: body,
        Substitutions: substitutions,
      },
    });
    // Measured as deployed: each reference as long as the longest bucket name.
    const propertiesBytes =
      JSON.stringify({ Bucket: '', Key: this.key, Body: body, Substitutions: substitutions }).length +
      (1 + Object.keys(substitutions).length) * deployedValueBytes;
    this.node.addValidation({
      validate: () => customResourceRequestViolations(this.node.path, propertiesBytes),
    });
  }

  /** Lets `reader` read this catalog, and names it in its PGSNAP_CATALOG. */
  grantRead(reader: IGrantable & { addEnvironment(key: string, value: string): unknown }): void {
    reader.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects(this.key)] }),
    );
    this.bucket.encryptionKey?.grantDecrypt(reader);
    reader.addEnvironment('PGSNAP_CATALOG', this.url);
  }
}

/** What the catalog says of each configured cluster; `repositoryOf` is its `s3://bucket/prefix`. */
export function catalogClusters(
  clusters: ClusterConfig[],
  repositoryOf: (cluster: ClusterConfig) => string,
  drRepositoryOf: (cluster: ClusterConfig) => string | undefined = () => undefined,
): CatalogCluster[] {
  return clusters.map((cluster) => {
    const drRepository = drRepositoryOf(cluster);
    return {
      name: cluster.name,
      ...('instanceId' in cluster.instance
        ? { instanceId: cluster.instance.instanceId }
        : { instanceTags: cluster.instance.tags }),
      volumeIds: cluster.volumeIds ?? [],
      fastCheckpoint: cluster.fastCheckpoint,
      maxBackupMinutes: cluster.maxBackupMinutes,
      repository: repositoryOf(cluster),
      ...(cluster.recoveryHours ? { recoverySeconds: Math.round(cluster.recoveryHours * 3600) } : {}),
      ...(drRepository ? { drRepository } : {}),
    };
  });
}
