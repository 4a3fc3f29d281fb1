import type { File as StoredFile } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesClient } from "./files-client.js";

export interface DownloadProgress {
  received: number;
  total: number;
  seconds: number;
}

/**
 * Streams a file with DownloadFile (the first message describes it, the rest carry its bytes),
 * assembles the chunks into a Blob and saves it under its stored name through an `<a download>`.
 * The Blob holds the whole file in memory, which suits the sizes a browser page handles.
 */
export async function downloadFile(
  client: FilesClient,
  fileId: string,
  onProgress: (p: DownloadProgress) => void,
): Promise<StoredFile> {
  const started = performance.now();
  let file: StoredFile | undefined;
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let received = 0;
  for await (const message of client.downloadFile({ fileId })) {
    const { payload } = message;
    if (payload.case === "file") {
      file = payload.value;
    } else if (payload.case === "chunk") {
      // Each chunk is decoded from a fetched ArrayBuffer, never a SharedArrayBuffer.
      chunks.push(payload.value as Uint8Array<ArrayBuffer>);
      received += payload.value.byteLength;
      onProgress({ received, total: Number(file?.bytes ?? 0), seconds: (performance.now() - started) / 1000 });
    }
  }
  if (!file) throw new Error("the download carried no file description");
  if (received !== Number(file.bytes)) throw new Error(`the download ended after ${received} of ${file.bytes} bytes`);
  onProgress({ received, total: received, seconds: (performance.now() - started) / 1000 });
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
