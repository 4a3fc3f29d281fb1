import { Code, ConnectError } from "@connectrpc/connect";
import { isFilesError, type FilesErrorCode } from "../../files/errors.js";

/** The one table from core failures to gRPC/Connect codes. */
const CODES: Record<FilesErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  out_of_range: Code.OutOfRange,
  too_large: Code.ResourceExhausted,
  conflict: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  cancelled: Code.Canceled,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
};

/**
 * Converts anything thrown by a handler into a ConnectError that is safe to send:
 * core errors keep their message; anything unexpected becomes a bare INTERNAL, and
 * `onUnexpected` gets the original so it is logged rather than leaked.
 */
export function toConnectError(err: unknown, onUnexpected: (err: unknown) => void): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isFilesError(err)) {
    // A dependency failure's cause (an S3 or SQL error) is for the log, never for the client.
    if (err.code === "unavailable" || err.code === "internal") onUnexpected(err);
    return new ConnectError(err.message, CODES[err.code]);
  }
  onUnexpected(err);
  return new ConnectError("internal error", Code.Internal);
}
