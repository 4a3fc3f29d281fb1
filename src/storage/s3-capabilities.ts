/**
 * What an S3-compatible store turned out not to implement. Stores differ (s3proxy, R2, B2, GCS's
 * XML API, SeaweedFS...): rather than assume, the S3 adapter notes an operation as missing the
 * first time the store answers it with 501 / NotImplemented, reports that once (a log line and a
 * metric label), and from then on takes the other road without asking again.
 */
import { s3Status } from "./s3-errors.js";

/** The optional operations the service can do without. */
export type S3Feature = "ListMultipartUploads" | "ListParts" | "UploadPartCopy" | "AbortMultipartUpload" | "HeadBucket" | "DeleteObjects";

/** What the service does instead, for the log line. */
export const FALLBACKS: Record<S3Feature, string> = {
  ListMultipartUploads: "unfinished multipart uploads cannot be listed: reconcile reports orphan objects only, and the bucket's lifecycle rules must clean up abandoned uploads",
  ListParts: "an unfinished upload is dated by its start, not by its newest part",
  UploadPartCopy: "Uploads are assembled by streaming their parts through the service instead of copying them inside the store",
  AbortMultipartUpload: "failed and cancelled uploads are left for the bucket's lifecycle rules (AbortIncompleteMultipartUpload) to remove",
  HeadBucket: "the bucket is checked with a one-key ListObjectsV2 instead",
  DeleteObjects: "an ended Upload's parts are removed one DeleteObject request each",
};

/** True when the store said it does not implement what was asked: HTTP 501, or the NotImplemented error code. */
export function isNotImplemented(err: unknown): boolean {
  if (s3Status(err) === 501) return true;
  const e = err as { name?: unknown; Code?: unknown } | undefined;
  return e?.name === "NotImplemented" || e?.Code === "NotImplemented";
}

export class S3Capabilities {
  private readonly missing = new Set<S3Feature>();

  /** @param onMissing called once per feature, the first time the store refuses it */
  constructor(private readonly onMissing?: (feature: S3Feature, fallback: string, error: unknown) => void) {}

  has(feature: S3Feature): boolean {
    return !this.missing.has(feature);
  }

  /** True when `err` says the store lacks `feature`; records it, and reports it the first time. */
  lacks(feature: S3Feature, err: unknown): boolean {
    if (!isNotImplemented(err)) return false;
    if (!this.missing.has(feature)) {
      this.missing.add(feature);
      this.onMissing?.(feature, FALLBACKS[feature], err);
    }
    return true;
  }

  /** The features found missing so far, in the order they were found. */
  get unsupported(): S3Feature[] {
    return [...this.missing];
  }
}
