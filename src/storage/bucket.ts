import { CreateBucketCommand, HeadBucketCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { S3Capabilities } from "./s3-capabilities.js";
import { describeTlsFailure, networkErrorCode, s3Status } from "./s3-errors.js";

export interface EnsureBucketOptions {
  /** Create the bucket when it does not exist (`auto_create_bucket`). */
  autoCreate: boolean;
  /** The configured region: where an auto-created bucket goes. */
  region: string;
  /** The configured `ca_bundle` file, named in the advice when the endpoint's certificate is not trusted. */
  caBundle?: string;
  /** Where a store without HeadBucket is noted (then a one-key listing checks the bucket). */
  capabilities?: S3Capabilities;
}

/**
 * HeadBucket, or on a store that answers it with 501 a ListObjectsV2 of one key, which needs the
 * same s3:ListBucket permission and fails the same ways (404 NoSuchBucket, 403, 301).
 */
export async function checkBucket(client: S3Client, bucket: string, capabilities?: S3Capabilities): Promise<void> {
  if (capabilities?.has("HeadBucket") ?? true) {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
      return;
    } catch (err) {
      if (!capabilities?.lacks("HeadBucket", err)) throw err;
    }
  }
  await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
}

/**
 * Startup check that the bucket exists and these credentials can reach it, creating it when
 * allowed. Failures are plain Errors written for the operator reading the startup log.
 */
export async function ensureBucket(client: S3Client, bucket: string, options: EnsureBucketOptions): Promise<void> {
  try {
    await checkBucket(client, bucket, options.capabilities);
    return;
  } catch (err) {
    const status = s3Status(err);
    const name = (err as Error | undefined)?.name;
    if (status === 404 || name === "NotFound" || name === "NoSuchBucket") {
      if (!options.autoCreate) {
        throw new Error(
          `bucket '${bucket}' does not exist: create it, or set auto_create_bucket: true to let the service create it`,
          { cause: err },
        );
      }
      await createBucket(client, bucket, options.region);
      return;
    }
    if (status === 403) {
      throw new Error(
        `access denied to bucket '${bucket}': the credentials need s3:ListBucket on the bucket and ` +
          "s3:GetObject, s3:PutObject, s3:DeleteObject and s3:AbortMultipartUpload on its objects",
        { cause: err },
      );
    }
    if (status === 301) {
      // HEAD answers a wrong-region request with a bare 301 and the bucket's region in a header.
      const actual = (err as { $response?: { headers?: Record<string, string> } }).$response?.headers?.["x-amz-bucket-region"];
      const where = actual ? `is in region '${actual}', not` : "is not in";
      throw new Error(`bucket '${bucket}' ${where} the configured region '${options.region}'`, { cause: err });
    }
    if (status === undefined) {
      const reason = describeTlsFailure(err, options.caBundle) ?? networkReason(err);
      throw new Error(`cannot reach object storage at ${await describeEndpoint(client, options.region)}: ${reason}`, {
        cause: err,
      });
    }
    throw new Error(`cannot check bucket '${bucket}': object storage answered HTTP ${status}`, { cause: err });
  }
}

async function createBucket(client: S3Client, bucket: string, region: string): Promise<void> {
  try {
    await client.send(
      new CreateBucketCommand({
        Bucket: bucket,
        // us-east-1 is the one region S3 refuses as an explicit LocationConstraint.
        ...(region !== "us-east-1" && { CreateBucketConfiguration: { LocationConstraint: region as never } }),
      }),
    );
  } catch (err) {
    const name = (err as Error | undefined)?.name;
    if (name === "BucketAlreadyOwnedByYou") return; // another replica won the race
    if (name === "BucketAlreadyExists") {
      throw new Error(`bucket name '${bucket}' is already taken by another account: choose another name`, { cause: err });
    }
    if (s3Status(err) === 403) {
      throw new Error(`access denied creating bucket '${bucket}': the credentials need s3:CreateBucket, or create it yourself`, {
        cause: err,
      });
    }
    throw new Error(`could not create bucket '${bucket}' in region '${region}': ${name ?? "unknown error"}`, { cause: err });
  }
}

/** Scheme, host and port only: an endpoint URL may carry user info that must not reach a log. */
async function describeEndpoint(client: S3Client, region: string): Promise<string> {
  const endpoint = await client.config.endpoint?.().catch(() => undefined);
  if (!endpoint) return `the AWS S3 endpoint for region '${region}'`;
  const port = endpoint.port ? `:${endpoint.port}` : "";
  return `${endpoint.protocol}//${endpoint.hostname}${port}`;
}

function networkReason(err: unknown): string {
  const e = err as { name?: string } | undefined;
  const code = networkErrorCode(err);
  if (code) return code;
  if (e?.name === "TimeoutError") return "timed out";
  return e?.name ?? "unknown error";
}
