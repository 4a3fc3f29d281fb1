import { invalidArgument, tooLarge } from "./errors.js";
import { isPurpose, isUploadPurpose, UPLOAD_PURPOSES, type UploadPurpose } from "./purposes.js";

/** What is known of an upload before its bytes: a multipart form puts these in the file part's headers. */
export interface UploadHead {
  filename: string;
  mimeType?: string;
}

/** What a transport hands the core for a new upload, straight off the wire. */
export interface UploadRequest extends UploadHead {
  purpose: string;
  /** Seconds after creation; undefined means the purpose's default. */
  expiresAfterSeconds?: number;
  /** Declared total size, verified when given. */
  sizeBytes?: number;
  /** Declared SHA-256 (hex, any case), verified when given. */
  sha256?: string;
}

export interface ValidUpload {
  filename: string;
  purpose: UploadPurpose;
  mimeType: string;
  expiresAfterSeconds?: number;
  sizeBytes?: number;
  sha256?: string;
}

export const MIN_EXPIRES_AFTER_SECONDS = 3600;
export const MAX_EXPIRES_AFTER_SECONDS = 2_592_000;
export const MAX_FILENAME_BYTES = 255;
const DEFAULT_MIME_TYPE = "application/octet-stream";

// Control characters would corrupt logs and headers; they are refused rather than silently dropped.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const MIME_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;\s*[\w!#$&^.+-]+=("[^"\r\n]*"|[\w!#$&^.+-]+))*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Checks an upload's metadata and normalises it; every failure names the offending field. */
export function validateUpload(req: UploadRequest, maxFileBytes: number): ValidUpload {
  return {
    filename: validateFilename(req.filename),
    purpose: validatePurpose(req.purpose),
    mimeType: validateMimeType(req.mimeType),
    expiresAfterSeconds: validateExpiresAfter(req.expiresAfterSeconds),
    sizeBytes: validateSize(req.sizeBytes, maxFileBytes),
    sha256: validateSha256(req.sha256),
  };
}

/**
 * Checks what is known before the bytes, for uploads whose other fields may arrive after them;
 * a purpose that is already known is checked too, so a wrong one fails before any byte is stored.
 */
export function validateHead(head: UploadHead & { purpose?: string }): { filename: string; mimeType: string } {
  if (head.purpose !== undefined) validatePurpose(head.purpose);
  return { filename: validateFilename(head.filename), mimeType: validateMimeType(head.mimeType) };
}

function validateFilename(filename: string): string {
  if (filename.length === 0) throw invalidArgument("filename", "filename is required");
  if (Buffer.byteLength(filename, "utf8") > MAX_FILENAME_BYTES) {
    throw invalidArgument("filename", `filename is longer than ${MAX_FILENAME_BYTES} bytes`);
  }
  if (CONTROL_CHARS.test(filename)) throw invalidArgument("filename", "filename contains control characters");
  if (!filename.isWellFormed()) throw invalidArgument("filename", "filename is not valid UTF-8");
  return filename;
}

function validatePurpose(purpose: string): UploadPurpose {
  if (purpose === "") throw invalidArgument("purpose", "purpose is required");
  if (isUploadPurpose(purpose)) return purpose;
  const why = isPurpose(purpose) ? "is produced by the server and cannot be uploaded" : "is not a known purpose";
  throw invalidArgument("purpose", `purpose '${purpose}' ${why}; use one of: ${UPLOAD_PURPOSES.join(", ")}`);
}

function validateMimeType(mimeType: string | undefined): string {
  if (mimeType === undefined || mimeType === "") return DEFAULT_MIME_TYPE;
  if (mimeType.length > 255 || !MIME_TYPE.test(mimeType)) {
    throw invalidArgument("mime_type", "mime_type is not a valid media type (type/subtype)");
  }
  return mimeType;
}

function validateExpiresAfter(seconds: number | undefined): number | undefined {
  if (seconds === undefined) return undefined;
  if (!Number.isInteger(seconds) || seconds < MIN_EXPIRES_AFTER_SECONDS || seconds > MAX_EXPIRES_AFTER_SECONDS) {
    throw invalidArgument(
      "expires_after.seconds",
      `expires_after.seconds must be an integer between ${MIN_EXPIRES_AFTER_SECONDS} and ${MAX_EXPIRES_AFTER_SECONDS}`,
    );
  }
  return seconds;
}

function validateSize(size: number | undefined, maxFileBytes: number): number | undefined {
  if (size === undefined) return undefined;
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument("size_bytes", "size_bytes must be a non-negative integer");
  if (size > maxFileBytes) {
    throw tooLarge(`size_bytes ${size} is larger than the limit of ${maxFileBytes} bytes`, "size_bytes");
  }
  return size;
}

function validateSha256(sha256: string | undefined): string | undefined {
  if (sha256 === undefined || sha256 === "") return undefined;
  const lower = sha256.toLowerCase();
  if (!SHA256_HEX.test(lower)) throw invalidArgument("sha256", "sha256 must be 64 hex characters");
  return lower;
}
