import { MAX_PARTS } from "./part-size.js";
import { PartBuffers } from "./part-buffers.js";

/** A part S3 has stored: what CompleteMultipartUpload must name. */
export interface SentPart {
  ETag: string;
  ChecksumCRC32?: string;
  ChecksumCRC32C?: string;
  ChecksumCRC64NVME?: string;
  ChecksumSHA1?: string;
  ChecksumSHA256?: string;
}

/** The S3 calls a put is made of, bound to one key (see S3ObjectStore). */
export interface PartSink {
  /** One PutObject of the whole body. */
  putWhole(body: Buffer): Promise<void>;
  /** CreateMultipartUpload; resolves with the upload id. */
  begin(): Promise<string>;
  /** UploadPart; `signal` cancels the request (a part cut short is never stored). */
  sendPart(uploadId: string, partNumber: number, body: Buffer, signal: AbortSignal): Promise<SentPart>;
  complete(uploadId: string, parts: (SentPart & { PartNumber: number })[]): Promise<void>;
  abort(uploadId: string): Promise<void>;
}

export interface PartWriterOptions {
  partSize: number;
  /** Parts sent at once. Memory is at most (this + 1) part buffers. */
  concurrency: number;
  /** Where part buffers come from; used when its size is `partSize`. */
  buffers?: PartBuffers;
  /** The caller giving up: the parts in flight get their grace, then are cancelled, and the upload is aborted. */
  signal?: AbortSignal;
  /** The multipart upload could not be aborted (the put still fails with its own error). */
  onAbortFailed?: (uploadId: string, error: unknown) => void;
}

/**
 * How long an abort waits for the part requests in flight to be answered before it cancels them
 * and goes out anyway. Waiting first matters: a part whose body was all sent may still be stored
 * after a cancel, and a part stored after the abort is not removed by it (AWS says to abort again;
 * s3proxy even takes the part as an object of its own). Not waiting for ever matters too: a store
 * may never answer.
 */
const PARTS_IN_FLIGHT_GRACE_MS = 2_000;

/**
 * Writes a stream of unknown length to S3 with bounded memory: one PutObject when it ends within
 * the first part, otherwise a multipart upload with `concurrency` parts in flight. The body is
 * copied at most once, into part buffers that are reused, and reading waits while every slot is
 * busy, which is the backpressure that keeps a fast client from outrunning S3.
 *
 * On any failure, of the body, of S3 or of the caller (`signal`), reading stops, the part requests
 * in flight get a short grace to be answered and are then cancelled (a store may never answer
 * one), the multipart upload is aborted, and the error is rethrown; an abort that fails is reported to
 * `onAbortFailed`, since the caller's error is the one to throw. Resolves with the bytes written
 * and whether they went out in parts.
 */
export async function writeInParts(
  body: AsyncIterable<Uint8Array>,
  options: PartWriterOptions,
  sink: PartSink,
): Promise<{ bytes: number; multipart: boolean }> {
  const { partSize, concurrency } = options;
  const buffers = options.buffers?.size === partSize ? options.buffers : new PartBuffers(partSize, 0);
  // The first bytes are kept as the chunks that arrived: small files (most of them) go out as one
  // PutObject without touching a part buffer. Past HEAD_CHUNK_BYTES they move into a part buffer,
  // which a body that ends within one part is then sent from, copied once like every other byte.
  const headLimit = Math.min(partSize, HEAD_CHUNK_BYTES);
  let head: Uint8Array[] | undefined = [];
  let headBytes = 0;
  let part: Buffer | undefined;
  let filled = 0;
  let total = 0;
  let uploadId: string | undefined;
  let partsSent = 0;
  const sent: (SentPart & { PartNumber: number })[] = [];
  const inFlight = new Set<Promise<void>>();
  let partFailure: { error: unknown } | undefined;
  const cancelParts = new AbortController();
  const callerSignal = options.signal;
  let wakeOnCallerAbort: (() => void) | undefined;
  const callerGaveUp = new Promise<void>((resolve) => (wakeOnCallerAbort = resolve));
  const onCallerAbort = () => {
    partFailure ??= { error: callerSignal!.reason };
    wakeOnCallerAbort!();
  };
  callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
  /** Resolves when a part settles, or when the caller gives up (then the failure is set). */
  const partSettledOrCancelled = () => Promise.race([...inFlight, callerGaveUp]);

  const dispatch = async (buffer: Buffer, length: number): Promise<void> => {
    while (inFlight.size >= concurrency && !partFailure) await partSettledOrCancelled();
    if (partFailure) throw partFailure.error;
    uploadId ??= await sink.begin();
    const partNumber = ++partsSent;
    if (partNumber > MAX_PARTS) throw new Error(`more than ${MAX_PARTS} parts of ${partSize} bytes`);
    const done: Promise<void> = sink
      .sendPart(uploadId, partNumber, buffer.subarray(0, length), cancelParts.signal)
      .then(
        (result) => void sent.push({ ...result, PartNumber: partNumber }),
        (error: unknown) => void (partFailure ??= { error }),
      )
      .finally(() => {
        inFlight.delete(done);
        buffers.give(buffer);
      });
    inFlight.add(done);
  };

  buffers.enter();
  try {
    for await (const chunk of body) {
      if (partFailure) throw partFailure.error;
      total += chunk.byteLength;
      let offset = 0;
      if (head) {
        if (headBytes + chunk.byteLength <= headLimit) {
          head.push(chunk);
          headBytes += chunk.byteLength;
          continue;
        }
        part = buffers.take();
        for (const c of head) {
          part.set(c, filled);
          filled += c.byteLength;
        }
        head = undefined;
      }
      while (offset < chunk.byteLength) {
        // A full part is sent only once more bytes arrive: the last part is never empty, and a
        // body of exactly one part is still one PutObject.
        if (filled === partSize) {
          const full = part!;
          part = undefined;
          await dispatch(full, filled);
          part = buffers.take();
          filled = 0;
        }
        const n = Math.min(partSize - filled, chunk.byteLength - offset);
        part!.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
      }
    }
    if (head) {
      await sink.putWhole(head.length === 1 ? asBuffer(head[0]!) : Buffer.concat(head, headBytes));
      return { bytes: total, multipart: false };
    }
    if (partsSent === 0) {
      await sink.putWhole(part!.subarray(0, filled));
      return { bytes: total, multipart: false };
    }
    const last = part!;
    part = undefined;
    await dispatch(last, filled);
    while (inFlight.size > 0 && !partFailure) await partSettledOrCancelled();
    if (partFailure) throw partFailure.error;
    sent.sort((a, b) => a.PartNumber - b.PartNumber);
    await sink.complete(uploadId!, sent);
    return { bytes: total, multipart: true };
  } catch (err) {
    const settled = Promise.all(inFlight);
    await settledWithin(settled, PARTS_IN_FLIGHT_GRACE_MS);
    // Cancelled requests settle at once (a part buffer is reused only once its request let go of it).
    cancelParts.abort(err);
    await settledWithin(settled, PARTS_IN_FLIGHT_GRACE_MS);
    if (uploadId !== undefined) {
      const id = uploadId;
      await sink.abort(id).catch((error: unknown) => options.onAbortFailed?.(id, error));
    }
    throw err;
  } finally {
    callerSignal?.removeEventListener("abort", onCallerAbort);
    if (part) buffers.give(part);
    buffers.leave();
  }
}

/** Waits for `settled`, or `ms` at most. */
async function settledWithin(settled: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Bodies up to this size are sent from the chunks they arrived in. */
const HEAD_CHUNK_BYTES = 1024 * 1024;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
