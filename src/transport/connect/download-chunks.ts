import { createContextKey } from "@connectrpc/connect";

/**
 * Set by a transport that joins consecutive download chunks into one message itself without
 * copying them (the gRPC fast path): the handler then only cuts reads to the message limit.
 */
export const JOINS_DOWNLOAD_CHUNKS = createContextKey(false, { description: "the transport joins download chunks" });

/**
 * Re-chunks a byte stream into pieces of at most `max` bytes. Each gRPC message costs a frame and
 * a trip through the response pipeline, so S3's 16–64 KiB reads are joined (one copy) into pieces
 * near `max`; a read of exactly `max` bytes passes through as it is, and a larger one is cut into
 * views, so neither is copied.
 */
export async function* rechunk(source: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = () => {
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    return joined;
  };
  for await (const chunk of source) {
    if (pendingBytes > 0 && pendingBytes + chunk.byteLength > max) yield flush();
    for (const piece of cutToSize(chunk, max)) {
      if (piece.byteLength === max) {
        yield piece;
        continue;
      }
      pending.push(piece);
      pendingBytes += piece.byteLength;
    }
    if (pendingBytes === max) yield flush();
  }
  if (pendingBytes > 0) yield flush();
}

/** A read cut into views of at most `max` bytes (nothing for an empty read); synchronous, so it adds no await per piece. */
export function* cutToSize(chunk: Uint8Array, max: number): Generator<Uint8Array> {
  for (; chunk.byteLength > max; chunk = chunk.subarray(max)) yield chunk.subarray(0, max);
  if (chunk.byteLength > 0) yield chunk;
}
