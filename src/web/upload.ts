import type { File as StoredFile, FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesClient } from "./files-client.js";

export interface UploadProgress {
  /** Bytes of parts the server has stored. */
  sent: number;
  total: number;
  seconds: number;
  /** "parts" while sending, "assembling" once every part is stored. */
  stage: "parts" | "assembling";
}

/**
 * Sends `file` through the client library, which uses the unary Uploads RPCs since browsers
 * cannot stream a request body: CreateUpload, AddUploadPart for each Blob slice (a few at a time,
 * each retried when the service is briefly unavailable), then CompleteUpload. Aborting `signal`
 * stops the parts in flight and cancels the upload, so its stored parts are removed.
 */
export async function uploadInParts(
  client: FilesClient,
  file: File,
  purpose: FilePurpose,
  onProgress: (p: UploadProgress) => void,
  signal: AbortSignal,
): Promise<StoredFile> {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  onProgress({ sent: 0, total: file.size, seconds: 0, stage: "parts" });
  return client.upload(file, {
    purpose,
    filename: file.name,
    mimeType: file.type || "application/octet-stream",
    signal,
    onProgress: ({ bytes }) => onProgress({ sent: bytes, total: file.size, seconds: elapsed(), stage: bytes === file.size ? "assembling" : "parts" }),
  });
}
