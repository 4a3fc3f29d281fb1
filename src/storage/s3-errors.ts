import { FilesError, unavailable } from "../files/errors.js";

/** The HTTP status of an S3 service error; undefined for network errors and timeouts. */
export function s3Status(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

function s3Name(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

/** True for "no such key" in all its spellings (HEAD answers carry no error code, only 404). */
export function isS3NotFound(err: unknown): boolean {
  const name = s3Name(err);
  return name === "NoSuchKey" || name === "NotFound" || (s3Status(err) === 404 && name !== "NoSuchBucket");
}

/**
 * Maps an S3 failure to the core's error set, keeping keys, buckets and SDK text out of the
 * message (the SDK error stays as `cause` for logs). Everything but a missing object or a bad
 * range is `unavailable`: network, 5xx, throttling, but also 400 RequestTimeout (a slow body),
 * expired tokens and access denied after a credential rotation, which a retry may well cure.
 */
export function fromS3Error(err: unknown): FilesError {
  if (err instanceof FilesError) return err;
  if (isS3NotFound(err)) return new FilesError("not_found", "The stored object does not exist", undefined, { cause: err });
  const status = s3Status(err);
  if (status === 416 || s3Name(err) === "InvalidRange") {
    return new FilesError("out_of_range", "The requested range starts past the end of the stored object", "offset", { cause: err });
  }
  return unavailable("object storage", err);
}
