import type { File as StoredFile } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesClient } from "./files-client.js";

export interface DownloadProgress {
  received: number;
  total: number;
  seconds: number;
}

/**
 * Streams a file through the client library (DownloadFile in windows, resumed if the connection
 * breaks), assembles the chunks into a Blob and saves it under its stored name through an
 * `<a download>`. The Blob holds the whole file in memory, which suits the sizes a page handles.
 */
export async function downloadFile(
  client: FilesClient,
  fileId: string,
  onProgress: (p: DownloadProgress) => void,
): Promise<StoredFile> {
  const started = performance.now();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const seconds = () => (performance.now() - started) / 1000;
  const file = await client.download(
    fileId,
    // Each chunk is decoded from a fetched ArrayBuffer, never a SharedArrayBuffer.
    (chunk) => void chunks.push(chunk as Uint8Array<ArrayBuffer>),
    { onProgress: ({ bytes, total }) => onProgress({ received: bytes, total: total ?? 0, seconds: seconds() }) },
  );
  const received = chunks.reduce((sum, c) => sum + c.byteLength, 0);
  if (received !== Number(file.bytes)) throw new Error(`the download ended after ${received} of ${file.bytes} bytes`);
  onProgress({ received, total: received, seconds: seconds() });
  save(new Blob(chunks, { type: file.mimeType || "application/octet-stream" }), file.filename);
  return file;
}

function save(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken its own reference once the download starts; free ours soon after.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
