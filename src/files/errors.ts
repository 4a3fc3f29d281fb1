/**
 * The closed set of failures the core reports. Each transport maps these codes
 * once (transport/connect/errors.ts, and later the REST mapping); nothing else
 * decides statuses.
 */
export type FilesErrorCode =
  | "invalid_argument"
  | "not_found"
  | "out_of_range"
  | "too_large"
  | "conflict"
  /** The access policy refuses an action on something the caller may see. */
  | "permission_denied"
  /** Too much at once (e.g. concurrent uploads); the same request may succeed later. */
  | "resource_exhausted"
  | "cancelled"
  | "unavailable"
  | "internal";

export class FilesError extends Error {
  override readonly name = "FilesError";
  constructor(
    readonly code: FilesErrorCode,
    message: string,
    /** The request field the problem is about, when there is one. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const invalidArgument = (param: string, message: string) =>
  new FilesError("invalid_argument", message, param);

export const notFound = (id: string, param = "file_id", what = "file") =>
  new FilesError("not_found", `No such ${what}: '${id}'`, param);

/** The request is well formed but the resource's state forbids it (e.g. completing a cancelled upload). */
export const conflict = (message: string, param?: string) => new FilesError("conflict", message, param);

export const tooLarge = (message: string, param?: string) => new FilesError("too_large", message, param);

export const outOfRange = (param: string, message: string) => new FilesError("out_of_range", message, param);

export const cancelled = (message = "The upload was cancelled by the client") =>
  new FilesError("cancelled", message);

/** A dependency (object store or database) failed; the message stays free of internals. */
export const unavailable = (what: string, cause: unknown) =>
  new FilesError("unavailable", `${what} is unavailable; try again later`, undefined, { cause });

/**
 * The store cannot do this at all: not a failure a retry would cure. The message says what the
 * service does instead; callers that can do without it (reconcile, the reaper) carry on.
 */
export class UnsupportedByStore extends Error {
  override readonly name = "UnsupportedByStore";
}

export function isUnsupportedByStore(err: unknown): err is UnsupportedByStore {
  return err instanceof UnsupportedByStore;
}

export function isFilesError(err: unknown): err is FilesError {
  return err instanceof FilesError;
}

/** Runs a dependency call; failures that are not already core errors mean the dependency could not do its job. */
export async function orUnavailable<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (err) {
    throw isFilesError(err) ? err : unavailable(what, err);
  }
}
