import { Code, ConnectError } from "@connectrpc/connect";
import { connect, type NodeFilesClient } from "../../clients/ts/src/node.js";

/** The client library's Node client; `.rpc` is the generated client for the calls it does not wrap. */
export type FilesClient = NodeFilesClient;

/** An expected failure: one line for the user, exit code 1, no stack trace. */
export class CliError extends Error {}

/** A command line that does not make sense: message plus usage text, exit code 2. */
export class UsageError extends Error {}

/** TLS material for an https:// URL: PEM contents, already read. No `ca` means the system CAs. */
export interface ClientTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * The library's client (gRPC with connect-node), which brings the transfer logic: large uploads
 * in parallel parts, downloads in windows that resume and verify. `ca` replaces the system CAs.
 */
export function filesClient(url: string, token: string | undefined, tls: ClientTls = {}): FilesClient {
  return connect({ url, token, ...(url.startsWith("https:") ? tls : {}) });
}

// Errors from the socket, not the service: the URL is wrong or nothing listens there.
const CONNECTION_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ERR_HTTP2_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "EPROTO",
]);

// The service's certificate failed verification: what is wrong with it, in a few words.
const UNTRUSTED = "its certificate is not trusted";
const SERVER_CERT_ERRORS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED,
  SELF_SIGNED_CERT_IN_CHAIN: UNTRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: UNTRUSTED,
  CERT_UNTRUSTED: UNTRUSTED,
  CERT_SIGNATURE_FAILURE: UNTRUSTED,
  CERT_HAS_EXPIRED: "its certificate has expired",
  CERT_NOT_YET_VALID: "its certificate is not valid yet",
  CERT_REVOKED: "its certificate is revoked",
  INVALID_PURPOSE: "its certificate is not one for a TLS server",
  ERR_TLS_CERT_ALTNAME_INVALID: "its certificate is not for this host name",
};

/** The TLS side of a failed connection to an https:// URL, or undefined if it is not one. */
function describeTlsError(code: string, url: string, clientCert: boolean): string | undefined {
  const reach = `cannot reach the service at ${url}`;
  const what = SERVER_CERT_ERRORS[code];
  if (what === UNTRUSTED) return `${reach}: ${what} (${code}); pass --ca-file with the CA that issued it`;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `${reach}: ${what} (${code}); use a --url host name the certificate names`;
  if (what) return `${reach}: ${what} (${code})`;
  if (code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED" || (!clientCert && code === "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE")) {
    return `${reach}: it requires a client certificate (${code}); pass --cert and --key`;
  }
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$/.exec(code);
  if (alert && /CERTIFICATE|UNKNOWN_CA|ACCESS_DENIED/.test(alert[1]!) && clientCert) {
    return `${reach}: it refused the client certificate (${code}); check --cert and --key`;
  }
  if (alert) return `${reach}: the TLS handshake failed (${code})`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG" || code === "EPROTO") {
    return `${reach}: it did not answer in TLS (${code}); if it serves plaintext, use an http:// URL`;
  }
  if (code === "ECONNRESET") {
    // A TLS server refusing an unverifiable client certificate hangs up without an alert.
    return clientCert
      ? `${reach}: it closed the connection (${code}); if it verifies client certificates, is --cert issued by a CA it trusts and still valid?`
      : `${reach}: it closed the connection (${code}); if it requires a client certificate, pass --cert and --key`;
  }
  return undefined;
}

function causeCode(err: ConnectError): string | undefined {
  let cause: unknown = err.cause;
  for (let depth = 0; cause && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * One line naming the problem, for a failed call to the service at `url` about file `fileId` (if
 * any); `clientCert` says whether a client certificate was offered (for https:// URLs).
 */
export function describeConnectError(err: ConnectError, url: string, fileId?: string, clientCert = false): string {
  const message = err.rawMessage;
  const code = causeCode(err);
  const https = url.startsWith("https://");
  if (code && https) {
    const tls = describeTlsError(code, url, clientCert);
    if (tls) return tls;
  }
  if (code === "ERR_HTTP2_SESSION_ERROR" && !https) {
    // What a TLS-only port answers plaintext HTTP/2 with: a GOAWAY(PROTOCOL_ERROR).
    return `cannot reach the service at ${url} (${code}); if it serves TLS, use an https:// URL`;
  }
  if (code && CONNECTION_ERRORS.has(code)) return `cannot reach the service at ${url} (${code})`;
  switch (err.code) {
    case Code.NotFound:
      return fileId ? `no such file: ${fileId}` : message;
    case Code.InvalidArgument:
    case Code.OutOfRange:
    case Code.FailedPrecondition:
    case Code.AlreadyExists:
    case Code.ResourceExhausted:
      return message;
    case Code.Unavailable:
      // The service answered but a dependency (S3, the database) is down, or the transport gave up.
      return /ECONN|connect|socket|session/i.test(message)
        ? `cannot reach the service at ${url} (${message})`
        : `the service at ${url} is unavailable: ${message}`;
    case Code.Unauthenticated:
      return `not authenticated: ${message} (pass --token or set FILES_TOKEN)`;
    case Code.PermissionDenied:
      return `permission denied: ${message}`;
    case Code.DeadlineExceeded:
      return `the service at ${url} did not answer in time`;
    case Code.Unimplemented:
      return `the service at ${url} does not offer this call (is it the files service?): ${message}`;
    case Code.Canceled:
      // Nothing in the CLI cancels a call itself: the service, or the connection, ended the stream.
      if (/stream closed with error code CANCEL/.test(message)) {
        const hint = https && clientCert ? "; if it verifies client certificates, is --cert issued by a CA it trusts and still valid?" : "";
        return `the service at ${url} closed the call (${message})${hint}`;
      }
      return "cancelled";
    case Code.Internal:
      return `the service at ${url} failed: ${message}`;
    default:
      return `${message} (${Code[err.code]})`;
  }
}

/** A local file-system error in a few words (the errno code otherwise). */
export function errnoText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    case "ENOTDIR":
      return "not a directory";
    case "ENOSPC":
      return "no space left on device";
    default:
      return err.code ?? err.message;
  }
}
