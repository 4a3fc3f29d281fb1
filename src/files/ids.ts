import { randomBytes } from "node:crypto";
import { invalidArgument } from "./errors.js";

const FILE_ID = /^file-[0-9a-f]{32}$/;

/** A new file id: "file-" and 32 lowercase hex characters (128 random bits), as OpenAI and Llama Stack mint them. */
export function newFileId(): string {
  return `file-${randomBytes(16).toString("hex")}`;
}

export function isFileId(value: string): boolean {
  return FILE_ID.test(value);
}

/**
 * Checks an id before it reaches a repository, an object key or a path.
 * A malformed id can name no stored file, so callers usually answer "not found";
 * `assertFileId` is for places where a malformed id is the client's mistake.
 */
export function assertFileId(value: string, param = "file_id"): string {
  if (!isFileId(value)) {
    throw invalidArgument(param, `${param} must be 'file-' followed by 32 lowercase hex characters`);
  }
  return value;
}

const UPLOAD_ID = /^upload_[0-9a-f]{32}$/;
const PART_ID = /^part_[0-9a-f]{32}$/;

/** Upload and part ids follow OpenAI's shapes ("upload_…", "part_…") with the same 128 random bits. */
export function newUploadId(): string {
  return `upload_${randomBytes(16).toString("hex")}`;
}

export function newPartId(): string {
  return `part_${randomBytes(16).toString("hex")}`;
}

export function isUploadId(value: string): boolean {
  return UPLOAD_ID.test(value);
}

export function isPartId(value: string): boolean {
  return PART_ID.test(value);
}
