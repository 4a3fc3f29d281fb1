import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { S3OperationSink } from "../observability/sinks.js";
import { instrumentS3Client } from "./s3-metrics.js";

type ChecksumSetting = "WHEN_SUPPORTED" | "WHEN_REQUIRED";

export interface S3ConnectionOptions {
  region: string;
  /** A custom endpoint (MinIO, moto, Ceph...). Unset: AWS. */
  endpointUrl?: string;
  /** Both keys, or neither: then the SDK's default credential chain (env, profile, IMDS, web identity). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Default: true with a custom endpoint, else the SDK's default. */
  forcePathStyle?: boolean;
  /** Default: WHEN_REQUIRED with a custom endpoint, else the SDK's default. */
  requestChecksumCalculation?: ChecksumSetting;
  /** Default: WHEN_REQUIRED with a custom endpoint, else the SDK's default. */
  responseChecksumValidation?: ChecksumSetting;
  /** Attempts per request, retries included (SDK default: 3). */
  maxAttempts?: number;
  /** Time allowed until the response headers arrive (for uploads, this includes sending the body). */
  requestTimeoutMs?: number;
  /** Receives each command's duration and failures. */
  metrics?: S3OperationSink;
}

/** Enough sockets for several concurrent multipart uploads plus downloads (the SDK's own default is 50). */
const MAX_SOCKETS = 128;
/** A connect that takes longer than this is treated as an unreachable endpoint. */
const CONNECT_TIMEOUT_MS = 10_000;

/** An S3 client configured for AWS or for an S3-compatible endpoint. */
export function createS3Client(opts: S3ConnectionOptions): S3Client {
  const custom = opts.endpointUrl !== undefined && opts.endpointUrl !== "";
  const hasKey = Boolean(opts.accessKeyId);
  if (hasKey !== Boolean(opts.secretAccessKey)) {
    throw new Error("S3 credentials need both an access key id and a secret access key, or neither");
  }

  const config: S3ClientConfig = {
    region: opts.region,
    // A plain options object: the client builds its NodeHttpHandler from it, keeping the
    // SDK's own Expect: 100-continue handling (which it skips for caller-made agents).
    requestHandler: {
      httpAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
      httpsAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
      connectionTimeout: CONNECT_TIMEOUT_MS,
      ...(opts.requestTimeoutMs !== undefined && { requestTimeout: opts.requestTimeoutMs, throwOnRequestTimeout: true }),
    },
  };
  if (custom) config.endpoint = opts.endpointUrl;
  if (hasKey) {
    config.credentials = {
      accessKeyId: opts.accessKeyId!,
      secretAccessKey: opts.secretAccessKey!,
      ...(opts.sessionToken && { sessionToken: opts.sessionToken }),
    };
  }
  // Most S3-compatible servers do not decode the aws-chunked CRC32 trailers the SDK sends by
  // default since v3.729 (s3rver even stores the framing as data), and few do virtual hosts.
  const forcePathStyle = opts.forcePathStyle ?? (custom ? true : undefined);
  const requestChecksum = opts.requestChecksumCalculation ?? (custom ? "WHEN_REQUIRED" : undefined);
  const responseChecksum = opts.responseChecksumValidation ?? (custom ? "WHEN_REQUIRED" : undefined);
  if (forcePathStyle !== undefined) config.forcePathStyle = forcePathStyle;
  if (requestChecksum !== undefined) config.requestChecksumCalculation = requestChecksum;
  if (responseChecksum !== undefined) config.responseChecksumValidation = responseChecksum;
  if (opts.maxAttempts !== undefined) config.maxAttempts = opts.maxAttempts;
  const client = new S3Client(config);
  if (opts.metrics) instrumentS3Client(client, opts.metrics);
  return client;
}
