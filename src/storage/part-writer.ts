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
  sendPart(uploadId: string, partNumber: number, body: Buffer): Promise<SentPart>;
  complete(uploadId: string, parts: (SentPart & { PartNumber: number })[]): Promise<void>;
  abort(uploadId: string): Promise<void>;
}

export interface PartWriterOptions {
  partSize: number;
  /** Parts sent at once. Memory is at most (this + 1) part buffers. */
  concurrency: number;
  /** Where part buffers come from; used when its size is `partSize`. */
  buffers?: PartBuffers;
}

/**
 * Writes a stream of unknown length to S3 with bounded memory: one PutObject when it ends within
 * the first part, otherwise a multipart upload with `concurrency` parts in flight. The body is
 * copied at most once, into part buffers that are reused, and reading waits while every slot is
 * busy, which is the backpressure that keeps a fast client from outrunning S3.
 *
 * On any failure, of the body or of S3, reading stops, the parts in flight settle, the multipart
 * upload is aborted (quietly: the original error is what the caller needs) and the error is
 * rethrown. Resolves with the bytes written and whether they went out in parts.
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

  const dispatch = async (buffer: Buffer, length: number): Promise<void> => {
    while (inFlight.size >= concurrency && !partFailure) await Promise.race(inFlight);
    if (partFailure) throw partFailure.error;
    uploadId ??= await sink.begin();
    const partNumber = ++partsSent;
    if (partNumber > MAX_PARTS) throw new Error(`more than ${MAX_PARTS} parts of ${partSize} bytes`);
    const done: Promise<void> = sink
      .sendPart(uploadId, partNumber, buffer.subarray(0, length))
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
    await Promise.all(inFlight);
    if (partFailure) throw partFailure.error;
    sent.sort((a, b) => a.PartNumber - b.PartNumber);
    await sink.complete(uploadId!, sent);
    return { bytes: total, multipart: true };
  } catch (err) {
    await Promise.all(inFlight);
    if (uploadId !== undefined) await sink.abort(uploadId).catch(() => {});
    throw err;
  } finally {
    if (part) buffers.give(part);
    buffers.leave();
  }
}

/** Bodies up to this size are sent from the chunks they arrived in. */
const HEAD_CHUNK_BYTES = 1024 * 1024;

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
