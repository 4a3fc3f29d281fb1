import type { S3StorageConfig, LocalFsStorageConfig } from "../config/config.js";
import type { ObjectStore } from "../files/ports.js";
import type { S3OperationSink } from "../observability/sinks.js";
import { ensureBucket } from "./bucket.js";
import { LocalFsObjectStore } from "./local-fs-object-store.js";
import { createS3Client, type S3Retry } from "./s3-client.js";
import { S3ObjectStore } from "./s3-object-store.js";

/** The object store a config names, ready to use (an S3 bucket is checked, or created when allowed). */
export async function openObjectStore(
  storage: S3StorageConfig | LocalFsStorageConfig,
  options: { metrics?: S3OperationSink; onS3Retry?: (retry: S3Retry) => void } = {},
): Promise<ObjectStore> {
  if (storage.type === "inline::localfs") return new LocalFsObjectStore({ dir: storage.storageDir });
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
    metrics: options.metrics,
    onRetry: options.onS3Retry,
  });
  await ensureBucket(client, storage.bucket, { autoCreate: storage.autoCreateBucket, region: storage.region });
  return new S3ObjectStore({
    client,
    bucket: storage.bucket,
    partSizeBytes: storage.partSizeBytes,
    partConcurrency: storage.partConcurrency,
    serverSideEncryption: storage.sse,
    sseKmsKeyId: storage.sseKmsKeyId,
  });
}
