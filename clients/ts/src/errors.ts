import { Code, ConnectError } from "@connectrpc/connect";

const REQUEST_ID_HEADER = "x-request-id";

/**
 * A failed call, as the service answered it: the gRPC status code, the service's own message and
 * the request id its log lines carry. Subclasses name the cases a caller branches on.
 */
export class FilesError extends Error {
  override name = "FilesError";
  constructor(
    message: string,
    /** The gRPC / Connect status code. */
    readonly code: Code,
    /** The x-request-id of the failed call (the service logs it with every line of the request). */
    readonly requestId: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** The code's name, e.g. "NotFound". */
  get codeName(): string {
    return Code[this.code] ?? String(this.code);
  }
}

export class NotFoundError extends FilesError {
  override name = "NotFoundError";
}
export class AuthenticationError extends FilesError {
  override name = "AuthenticationError";
}
export class PermissionDeniedError extends FilesError {
  override name = "PermissionDeniedError";
}
/** The file or part is over one of the service's size limits. */
export class TooLargeError extends FilesError {
  override name = "TooLargeError";
}
export class InvalidArgumentError extends FilesError {
  override name = "InvalidArgumentError";
}
/** The service or a dependency of it is unavailable, or busy (RESOURCE_EXHAUSTED); worth retrying later. */
export class UnavailableError extends FilesError {
  override name = "UnavailableError";
}
/** The bytes do not match the SHA-256 the service recorded. */
export class IntegrityError extends FilesError {
  override name = "IntegrityError";
  constructor(message: string, requestId?: string) {
    super(message, Code.DataLoss, requestId);
  }
}

// The service answers RESOURCE_EXHAUSTED both for a size over a limit ("... is larger than the
// limit of N bytes") and for a full server (upload slots, rate limits); only the first is final.
const SIZE_LIMIT = /larger than the (?:\w+ )?limit|too large|message size/i;

/** Any error from a call as a FilesError of the matching class (a FilesError is returned as is). */
export function toFilesError(err: unknown, requestId?: string): FilesError {
  if (err instanceof FilesError) return err;
  const e = ConnectError.from(err);
  const id = e.metadata.get(REQUEST_ID_HEADER) ?? requestId;
  const message = e.rawMessage || Code[e.code] || "error";
  const args = [message, e.code, id ?? undefined, { cause: err }] as const;
  switch (e.code) {
    case Code.NotFound:
      return new NotFoundError(...args);
    case Code.Unauthenticated:
      return new AuthenticationError(...args);
    case Code.PermissionDenied:
      return new PermissionDeniedError(...args);
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return new InvalidArgumentError(...args);
    case Code.ResourceExhausted:
      return SIZE_LIMIT.test(message) ? new TooLargeError(...args) : new UnavailableError(...args);
    case Code.Unavailable:
      return new UnavailableError(...args);
    default:
      return new FilesError(...args);
  }
}

/** Worth another attempt: the service was unreachable or busy, not refusing the request itself. */
export function isRetryable(err: FilesError): boolean {
  return err instanceof UnavailableError;
}

export { REQUEST_ID_HEADER };
