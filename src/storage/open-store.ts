import type { S3StorageConfig, LocalFsStorageConfig } from "../config/config.js";
import type { ObjectStore } from "../files/ports.js";
import { readCaFile } from "../config/ca-file.js";
import type { S3OperationSink } from "../observability/sinks.js";
import { ensureBucket } from "./bucket.js";
import { LocalFsObjectStore } from "./local-fs-object-store.js";
import { createS3Client, type S3Retry } from "./s3-client.js";
import { S3Capabilities, type S3Feature } from "./s3-capabilities.js";
import { S3ObjectStore, type AbortFailure } from "./s3-object-store.js";

export interface OpenObjectStoreOptions {
  metrics?: S3OperationSink;
  onS3Retry?: (retry: S3Retry) => void;
  /** Called once, before connecting, when `verify_ssl: false` turns certificate checks off (with a message naming the endpoint). */
  onInsecureTls?: (message: string, endpoint: string) => void;
  /** Called once per operation the store turns out not to implement (501), with what is done instead. */
  onUnsupported?: (operation: S3Feature, fallback: string, error: unknown) => void;
  /** A failed or cancelled upload whose multipart upload could not be aborted. */
  onAbortFailed?: (event: AbortFailure) => void;
}

/** The object store a config names, ready to use (an S3 bucket is checked, or created when allowed). */
export async function openObjectStore(storage: S3StorageConfig | LocalFsStorageConfig, options: OpenObjectStoreOptions = {}): Promise<ObjectStore> {
  if (storage.type === "inline::localfs") return new LocalFsObjectStore({ dir: storage.storageDir });
  const caBundle = storage.caBundle !== undefined ? readCaFile(storage.caBundle, "config.ca_bundle") : undefined;
  if (!storage.verifySsl) {
    const endpoint = storage.endpointUrl ? withoutUserInfo(storage.endpointUrl) : `the AWS S3 endpoint for region '${storage.region}'`;
    options.onInsecureTls?.(
      `verify_ssl is false: certificate verification of the S3 endpoint ${endpoint} is OFF, ` +
        "so anyone on the network path can read and alter the files; set config.ca_bundle instead",
      endpoint,
    );
  }
  const client = createS3Client({
    region: storage.region,
    endpointUrl: storage.endpointUrl,
    accessKeyId: storage.accessKeyId,
    secretAccessKey: storage.secretAccessKey,
    sessionToken: storage.sessionToken,
    forcePathStyle: storage.forcePathStyle,
    requestChecksumCalculation: storage.requestChecksumCalculation,
    responseChecksumValidation: storage.responseChecksumValidation,
    connectTimeoutMs: storage.connectTimeoutMs,
    requestTimeoutMs: storage.requestTimeoutMs,
    maxAttempts: storage.maxAttempts,
    retryMode: storage.retryMode,
    payloadSigning: storage.payloadSigning,
    caBundle,
    verifySsl: storage.verifySsl,
    metrics: options.metrics,
    onRetry: options.onS3Retry,
  });
  const capabilities = new S3Capabilities((operation, fallback, error) => {
    options.metrics?.s3Unsupported?.(operation);
    options.onUnsupported?.(operation, fallback, error);
  });
  await ensureBucket(client, storage.bucket, { autoCreate: storage.autoCreateBucket, region: storage.region, caBundle: storage.caBundle, capabilities });
  return new S3ObjectStore({
    client,
    bucket: storage.bucket,
    partSizeBytes: storage.partSizeBytes,
    partConcurrency: storage.partConcurrency,
    serverSideEncryption: storage.sse,
    sseKmsKeyId: storage.sseKmsKeyId,
    capabilities,
    onAbortFailed: options.onAbortFailed,
  });
}

/** Scheme, host and port: an endpoint URL may carry user info that must not reach a log. */
function withoutUserInfo(endpointUrl: string): string {
  try {
    const url = new URL(endpointUrl);
    return `${url.protocol}//${url.host}`;
  } catch {
    return "(unparsable endpoint_url)";
  }
}
