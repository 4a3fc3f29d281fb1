import type { FileRecord, UploadPartRecord } from "../../files/ports.js";
import type { UploadView } from "../../files/uploads-service.js";

/** OpenAI's File object. `status` is deprecated but required by clients; `expires_at` is null, never 0, without expiry. */
export function fileJson(file: FileRecord) {
  return {
    id: file.id,
    object: "file",
    bytes: file.bytes,
    created_at: file.createdAt,
    expires_at: file.expiresAt,
    filename: file.filename,
    purpose: file.purpose,
    status: file.status,
    status_details: null,
  };
}

export function uploadJson({ upload, file }: UploadView) {
  return {
    id: upload.id,
    object: "upload",
    bytes: upload.bytes,
    created_at: upload.createdAt,
    expires_at: upload.expiresAt,
    filename: upload.filename,
    purpose: upload.purpose,
    status: upload.status,
    file: file ? fileJson(file) : null,
  };
}

export function uploadPartJson(part: UploadPartRecord) {
  return { id: part.id, object: "upload.part", created_at: part.createdAt, upload_id: part.uploadId };
}
