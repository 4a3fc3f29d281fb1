import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import type { BuildMiddleware, FinalizeRequestMiddleware, MetadataBearer } from "@smithy/types";
import type { PayloadSigning } from "../config/config.js";
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
  /** The SDK's retry strategy: both back off exponentially with jitter; adaptive also rate-limits the client. */
  retryMode?: "standard" | "adaptive";
  /** Time allowed to open a connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Time allowed until the response headers arrive (for uploads, this includes sending the body). */
  requestTimeoutMs?: number;
  /** PEM text of the CAs trusted for an https endpoint, instead of Node's built-in list (see readCaFile). */
  caBundle?: string;
  /** false: the endpoint's certificate is not verified at all. Default true. */
  verifySsl?: boolean;
  /**
   * Whether SigV4 signs a SHA-256 of the bytes of every PutObject and UploadPart. "auto" (the
   * default): only over plain HTTP, as boto3 does, since TLS already protects the bytes in transit.
   */
  payloadSigning?: PayloadSigning;
  /** Receives each command's duration and failures. */
  metrics?: S3OperationSink;
  /** Called as a failed attempt is retried (a command that succeeds on a retry is otherwise invisible). */
  onRetry?: (retry: S3Retry) => void;
}

export interface S3Retry {
  /** The command, e.g. PutObject. */
  operation: string;
  /** The attempt about to start (2 for the first retry). */
  attempt: number;
  /** Why the previous attempt failed: the S3 error code (SlowDown...) or a network one (ETIMEDOUT...). */
  errorCode: string;
  /** The previous attempt's HTTP status, when it got an answer. */
  status?: number;
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
      httpsAgent: {
        keepAlive: true,
        maxSockets: MAX_SOCKETS,
        ...(opts.caBundle !== undefined && { ca: opts.caBundle }),
        ...(opts.verifySsl === false && { rejectUnauthorized: false }),
      },
      connectionTimeout: opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
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
  // The handler sends each Expect: 100-continue request (bodies of 2 MiB or more: parts, large
  // PUTs) on an https.Agent of its own, made without the options above, so those requests would
  // not see ca/rejectUnauthorized at all (the TLS check fails, or is silently back on). With
  // custom TLS settings, no body waits for 100 Continue: every request uses the agent above.
  if (opts.caBundle !== undefined || opts.verifySsl === false) config.expectContinueHeader = false;
  if (opts.maxAttempts !== undefined) config.maxAttempts = opts.maxAttempts;
  if (opts.retryMode !== undefined) config.retryMode = opts.retryMode;
  const client = new S3Client(config);
  if (!signsPayloads(opts.payloadSigning ?? "auto", opts.endpointUrl)) sendUnsignedPayloads(client);
  if (opts.metrics) instrumentS3Client(client, opts.metrics);
  const { metrics, onRetry } = opts;
  if (metrics || onRetry) {
    reportRetries(client, (retry) => {
      metrics?.s3Retry(retry.operation, retry.errorCode);
      onRetry?.(retry);
    });
  }
  return client;
}

/** Over HTTPS (AWS itself, or an https:// endpoint) "auto" leaves the payload unsigned. */
export function signsPayloads(setting: PayloadSigning, endpointUrl: string | undefined): boolean {
  if (setting !== "auto") return setting === "always";
  return endpointUrl !== undefined && endpointUrl !== "" && new URL(endpointUrl).protocol === "http:";
}

/** The commands whose bodies are file bytes. */
const BODY_COMMANDS = new Set(["PutObjectCommand", "UploadPartCommand"]);

/**
 * The signer hashes a Buffer body with SHA-256 for x-amz-content-sha256 unless that header is
 * already set; this sets it to UNSIGNED-PAYLOAD, which S3 accepts (the SDK itself sends streamed
 * bodies that way). The service hashes every byte once already, for the file's own SHA-256: the
 * signer's pass was a second one, the largest single CPU cost of an upload (BENCHMARKS.md).
 */
function sendUnsignedPayloads(client: S3Client): void {
  const middleware: BuildMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
    const request = args.request as { headers?: Record<string, string> } | undefined;
    if (BODY_COMMANDS.has(context.commandName ?? "") && request?.headers) request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    return next(args);
  };
  client.middlewareStack.add(middleware, { step: "build", name: "filesUnsignedPayload" });
}

/**
 * Runs inside the SDK's retry loop, once per attempt: when an attempt after the first starts, the
 * one before it failed and is being retried. The attempt number comes from the header the retry
 * middleware sets on each attempt (amz-sdk-request: attempt=N; max=M).
 */
function reportRetries(client: S3Client, onRetry: (retry: S3Retry) => void): void {
  const lastFailure = new WeakMap<object, { errorCode: string; status?: number }>();
  const middleware: FinalizeRequestMiddleware<object, MetadataBearer> = (next, context) => async (args) => {
    const header = (args.request as { headers?: Record<string, string> } | undefined)?.headers?.["amz-sdk-request"];
    const attempt = Number(/attempt=(\d+)/.exec(header ?? "")?.[1] ?? 1);
    const previous = lastFailure.get(context);
    if (attempt > 1 && previous) {
      const operation = (context.commandName ?? "Unknown").replace(/Command$/, "");
      try {
        onRetry({ operation, attempt, ...previous });
      } catch {
        // A reporting failure must not fail the request.
      }
    }
    try {
      return await next(args);
    } catch (err) {
      lastFailure.set(context, describeFailure(err));
      throw err;
    }
  };
  client.middlewareStack.addRelativeTo(middleware, { name: "filesS3RetryReport", relation: "after", toMiddleware: "retryMiddleware" });
}

function describeFailure(err: unknown): { errorCode: string; status?: number } {
  const e = err as { Code?: unknown; code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: unknown } } | undefined;
  const raw = [e?.Code, e?.code, e?.name].find((v): v is string => typeof v === "string" && v !== "") ?? "Unknown";
  const status = e?.$metadata?.httpStatusCode;
  return { errorCode: raw.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64), ...(typeof status === "number" && { status }) };
}
