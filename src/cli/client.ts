import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FilesService } from "../../gen/ts/files/v1/files_pb.js";

export type FilesClient = Client<typeof FilesService>;

/** An expected failure: one line for the user, exit code 1, no stack trace. */
export class CliError extends Error {}

/** A command line that does not make sense: message plus usage text, exit code 2. */
export class UsageError extends Error {}

export function filesClient(url: string, token: string | undefined): FilesClient {
  const interceptors: Interceptor[] = [];
  if (token) {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  // Messages up to the server's own default limit; chunks are 1 MiB (up) and 256 KiB (down).
  const transport = createGrpcTransport({ baseUrl: url, interceptors, readMaxBytes: 16 << 20, writeMaxBytes: 16 << 20 });
  return createClient(FilesService, transport);
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

function causeCode(err: ConnectError): string | undefined {
  let cause: unknown = err.cause;
  for (let depth = 0; cause && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** One line naming the problem, for a failed call to the service at `url` about file `fileId` (if any). */
export function describeConnectError(err: ConnectError, url: string, fileId?: string): string {
  const message = err.rawMessage;
  const code = causeCode(err);
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
