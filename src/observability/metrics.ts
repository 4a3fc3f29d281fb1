import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { MetadataQuerySink, Outcome, RequestSink, S3OperationSink, TlsSink, Transport } from "./sinks.js";

/** Transfers of large files take minutes; small ones milliseconds. */
const TRANSFER_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const S3_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The service's Prometheus metrics, on a registry of its own (not prom-client's global one, so
 * several instances in one process never clash), plus prom-client's default process metrics.
 */
export class FilesMetrics implements RequestSink, S3OperationSink, MetadataQuerySink, TlsSink {
  readonly registry = new Registry();

  private readonly uploadBytes = new Counter({
    name: "files_upload_bytes_total",
    help: "Bytes received for uploads (UploadFile and AddUploadPart chunk bytes; REST request body bytes, multipart framing included)",
    labelNames: ["transport"] as const,
    registers: [this.registry],
  });
  private readonly downloadBytes = new Counter({
    name: "files_download_bytes_total",
    help: "File content bytes sent (DownloadFile chunk bytes; REST response body bytes of /v1/files/{id}/content)",
    labelNames: ["transport"] as const,
    registers: [this.registry],
  });
  private readonly uploadSeconds = new Histogram({
    name: "files_upload_duration_seconds",
    help: "Time from the start of an upload request (whole file or part) to its answer",
    labelNames: ["transport", "outcome"] as const,
    buckets: TRANSFER_BUCKETS,
    registers: [this.registry],
  });
  private readonly downloadSeconds = new Histogram({
    name: "files_download_duration_seconds",
    help: "Time from the start of a download request to its last byte",
    labelNames: ["transport", "outcome"] as const,
    buckets: TRANSFER_BUCKETS,
    registers: [this.registry],
  });
  private readonly requests = new Counter({
    name: "files_requests_total",
    help: "Finished requests: REST by route template and HTTP status, RPCs by path and code name",
    labelNames: ["route", "method", "status"] as const,
    registers: [this.registry],
  });
  private readonly s3Seconds = new Histogram({
    name: "files_s3_operation_duration_seconds",
    help: "S3 command time until the response headers, retries included, by command name",
    labelNames: ["operation", "outcome"] as const,
    buckets: S3_BUCKETS,
    registers: [this.registry],
  });
  private readonly s3Errors = new Counter({
    name: "files_s3_operation_errors_total",
    help: "Failed S3 commands, by command name and error code",
    labelNames: ["operation", "code"] as const,
    registers: [this.registry],
  });
  private readonly s3Retries = new Counter({
    name: "files_s3_retries_total",
    help: "S3 attempts that failed and were retried (throttling, 5xx, timeouts), by command name and error code",
    labelNames: ["operation", "code"] as const,
    registers: [this.registry],
  });
  private readonly s3UnsupportedOps = new Gauge({
    name: "files_s3_unsupported_operation",
    help: "1 for each S3 operation the store answered with 501 NotImplemented; the service takes another road for it",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });
  private readonly querySeconds = new Histogram({
    name: "files_metadata_query_duration_seconds",
    help: "Metadata repository calls, by repository method",
    labelNames: ["operation", "outcome"] as const,
    buckets: QUERY_BUCKETS,
    registers: [this.registry],
  });
  private readonly uploadsInFlight = new Gauge({
    name: "files_uploads_in_flight",
    help: "Whole-file uploads and upload parts being streamed in right now",
    registers: [this.registry],
  });
  /** Incremented by the reaper (files/reaper.ts), once per file: replicas' sums count each file once. */
  readonly reaped = new Counter({
    name: "files_reaped_total",
    help: "Expired files removed by the reaper (object, then row)",
    registers: [this.registry],
  });
  readonly reapedUploads = new Counter({
    name: "files_reaped_uploads_total",
    help: "Uploads the reaper marked expired, their parts removed too: pending ones past their expiry, and ones a crash left completing",
    registers: [this.registry],
  });

  private readonly tlsExpiry = new Gauge({
    name: "files_tls_certificate_expiry_seconds",
    help: "When the serving TLS certificate expires, as Unix time in seconds (alert on it minus time())",
    registers: [this.registry],
  });
  private readonly tlsReloads = new Counter({
    name: "files_tls_reloads_total",
    help: "Reloads of the TLS certificate files (on change or SIGHUP); outcome error: the new files were refused and the old certificate stays",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  private readonly tlsHandshakeFailures = new Counter({
    name: "files_tls_handshake_failures_total",
    help: "Connections refused before a request: failed TLS handshakes (a client certificate refused, no common protocol, a timeout) and plaintext on the TLS port, by error code",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Byte counters start at 0 for every transport, so rate() has a series before the first transfer.
    for (const transport of ["grpc", "grpc_web", "connect", "rest"] satisfies Transport[]) {
      this.uploadBytes.inc({ transport }, 0);
      this.downloadBytes.inc({ transport }, 0);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  request(route: string, method: string, status: string): void {
    this.requests.inc({ route, method, status });
  }

  uploadStarted(): () => void {
    this.uploadsInFlight.inc();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.uploadsInFlight.dec();
    };
  }

  upload(transport: Transport, bytes: number, seconds: number, outcome: Outcome): void {
    this.uploadBytes.inc({ transport }, bytes);
    this.uploadSeconds.observe({ transport, outcome }, seconds);
  }

  download(transport: Transport, bytes: number, seconds: number, outcome: Outcome): void {
    this.downloadBytes.inc({ transport }, bytes);
    this.downloadSeconds.observe({ transport, outcome }, seconds);
  }

  s3Operation(operation: string, seconds: number, errorCode?: string): void {
    this.s3Seconds.observe({ operation, outcome: errorCode === undefined ? "ok" : "error" }, seconds);
    if (errorCode !== undefined) this.s3Errors.inc({ operation, code: errorCode });
  }

  s3Retry(operation: string, errorCode: string): void {
    this.s3Retries.inc({ operation, code: errorCode });
  }

  s3Unsupported(operation: string): void {
    this.s3UnsupportedOps.set({ operation }, 1);
  }

  tlsCertificateInUse(notAfter: Date): void {
    this.tlsExpiry.set(Math.floor(notAfter.getTime() / 1000));
  }

  tlsReload(outcome: Outcome): void {
    this.tlsReloads.inc({ outcome });
  }

  tlsHandshakeFailed(code: string): void {
    this.tlsHandshakeFailures.inc({ code: code.replace(/[^A-Za-z0-9_]/g, "_").slice(0, 64) });
  }

  metadataQuery(operation: string, seconds: number, outcome: Outcome): void {
    this.querySeconds.observe({ operation, outcome }, seconds);
  }
}
