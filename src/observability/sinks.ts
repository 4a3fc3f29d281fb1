/**
 * What the transports, the storage adapter and the repository decorators report, as plain
 * interfaces: only src/observability/metrics.ts knows these end up in prom-client.
 */

/** How a request reached the service. RPC protocols come from the request's content-type. */
export type Transport = "grpc" | "grpc_web" | "connect" | "rest";

/** "ok" when the call succeeded, otherwise "error" (client mistakes included). */
export type Outcome = "ok" | "error";

export interface RequestSink {
  /** One finished request: REST route template and HTTP status, or RPC path and code name. */
  request(route: string, method: string, status: string): void;
  /** A whole-file upload or an upload part started streaming in; call the returned function once it ends. */
  uploadStarted(): () => void;
  upload(transport: Transport, bytes: number, seconds: number, outcome: Outcome): void;
  download(transport: Transport, bytes: number, seconds: number, outcome: Outcome): void;
}

export interface S3OperationSink {
  /** One S3 command, retries included; `errorCode` is set when it failed. */
  s3Operation(operation: string, seconds: number, errorCode?: string): void;
  /** An attempt failed with `errorCode` and the SDK is trying the command again. */
  s3Retry(operation: string, errorCode: string): void;
  /** The store answered `operation` with 501 NotImplemented: the service does without it from now on. */
  s3Unsupported?(operation: string): void;
}

export interface MetadataQuerySink {
  metadataQuery(operation: string, seconds: number, outcome: Outcome): void;
}

export interface TlsSink {
  /** The serving certificate now in use for new connections; `notAfter` is its expiry. */
  tlsCertificateInUse(notAfter: Date): void;
  /** A reload of the certificate files was tried: "ok", or "error" when the old certificate stays. */
  tlsReload(outcome: Outcome): void;
  /** A connection refused before it could make a request: a failed handshake, or plaintext on the TLS port. */
  tlsHandshakeFailed(code: string): void;
}
