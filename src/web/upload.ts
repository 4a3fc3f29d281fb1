import type { File as StoredFile, FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesClient } from "./files-client.js";

/**
 * 4 MiB parts: well under the server's default 8 MiB message limit (a part travels in one
 * message) and its 64 MiB part limit, and small enough for a steady progress bar.
 */
export const PART_BYTES = 4 * 1024 * 1024;
/** Parts in flight at once: enough to overlap requests, few enough to bound memory (~3 parts). */
const PARALLEL_PARTS = 3;

export interface UploadProgress {
  /** Bytes of parts the server has stored. */
  sent: number;
  total: number;
  seconds: number;
  /** "parts" while sending, "assembling" once every part is stored. */
  stage: "parts" | "assembling";
}

/**
 * Sends `file` with the unary Uploads RPCs, since browsers cannot stream a request body:
 * CreateUpload, then AddUploadPart for each `Blob.slice` (a few at a time), then CompleteUpload
 * naming the parts in file order. Aborting `signal` stops the parts in flight and cancels the
 * upload on the server, so its stored parts are removed rather than left to expire.
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
  const { upload } = await client.createUpload(
    { filename: file.name, purpose, bytes: BigInt(file.size), mimeType: file.type || "application/octet-stream" },
    { signal },
  );
  if (!upload) throw new Error("the server answered CreateUpload without an upload");
  // Stops our own parts when one fails, as well as when the user cancels.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const count = Math.ceil(file.size / PART_BYTES);
    const partIds = new Array<string>(count);
    let next = 0;
    let sent = 0;
    onProgress({ sent, total: file.size, seconds: 0, stage: "parts" });
    const worker = async () => {
      while (next < count && !stop.signal.aborted) {
        const index = next++;
        const blob = file.slice(index * PART_BYTES, Math.min(file.size, (index + 1) * PART_BYTES));
        const data = new Uint8Array(await blob.arrayBuffer());
        const { part } = await client.addUploadPart({ uploadId: upload.id, data }, { signal: stop.signal });
        if (!part) throw new Error("the server answered AddUploadPart without a part");
        partIds[index] = part.id;
        sent += data.byteLength;
        onProgress({ sent, total: file.size, seconds: elapsed(), stage: "parts" });
      }
    };
    const workers = Array.from({ length: Math.min(PARALLEL_PARTS, count) }, () =>
      worker().catch((err: unknown) => {
        stop.abort(err);
        throw err;
      }),
    );
    const results = await Promise.allSettled(workers);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw signal.aborted ? signal.reason : failed.reason;
    signal.throwIfAborted();
    onProgress({ sent, total: file.size, seconds: elapsed(), stage: "assembling" });
    const done = await client.completeUpload({ uploadId: upload.id, partIds }, { signal });
    if (!done.upload?.file) throw new Error("the server completed the upload without a file");
    return done.upload.file;
  } catch (err) {
    // Best effort: a failed cancel only means the parts wait for the upload's expiry.
    await client.cancelUpload({ uploadId: upload.id }).catch(() => undefined);
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
