import { isFilesError, type FilesErrorCode } from "../../files/errors.js";

/** OpenAI's error types: SDKs switch on the status, and users read `type` and `param`. */
export type OpenAiErrorType = "invalid_request_error" | "server_error";

/** A failure the REST layer itself detects (wrong media type, malformed body, unknown route). */
export class RestError extends Error {
  override readonly name = "RestError";
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

export interface OpenAiError {
  status: number;
  body: { error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null } };
  /** The cause, when it must be logged rather than shown. */
  unexpected?: unknown;
}

/**
 * The one table from core failures to HTTP. Client mistakes are all 4xx: the SDKs retry 5xx,
 * and a retry loop is the last answer a bad request should get.
 */
const STATUS: Record<FilesErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  out_of_range: 416,
  too_large: 413,
  conflict: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  cancelled: 499,
  unavailable: 503,
  internal: 500,
};

const CODE: Partial<Record<FilesErrorCode, string>> = {
  too_large: "file_too_large",
  permission_denied: "permission_denied",
  resource_exhausted: "rate_limit_exceeded",
  unavailable: "service_unavailable",
};

export function toOpenAiError(err: unknown): OpenAiError {
  if (err instanceof RestError) return shape(err.status, err.message, err.param, err.code);
  if (isFilesError(err)) {
    const status = STATUS[err.code];
    const out = shape(status, err.message, err.param ?? null, CODE[err.code] ?? null);
    // A dependency failure's cause (an S3 or SQL error) is for the log, never for the client.
    if (status >= 500) out.unexpected = err;
    return out;
  }
  return { ...shape(500, "internal error", null, null), unexpected: err };
}

function shape(status: number, message: string, param: string | null, code: string | null): OpenAiError {
  const type: OpenAiErrorType = status >= 500 ? "server_error" : "invalid_request_error";
  return { status, body: { error: { message, type, param, code } } };
}
