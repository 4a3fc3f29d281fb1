/** What an upload reads from, and how it is cut into pieces without holding it whole. */
export type UploadSource = Uint8Array | Blob | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** The source's size when it is knowable without reading it. */
export function knownSize(source: UploadSource): number | undefined {
  if (source instanceof Uint8Array) return source.byteLength;
  if (typeof Blob !== "undefined" && source instanceof Blob) return source.size;
  return undefined;
}

/** Pieces of at most `size` bytes, in order (larger input chunks are split, never copied whole). */
export async function* pieces(source: UploadSource, size: number): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    for (let at = 0; at < source.byteLength; at += size) yield source.subarray(at, Math.min(source.byteLength, at + size));
    return;
  }
  if (typeof Blob !== "undefined" && source instanceof Blob) {
    for (let at = 0; at < source.size; at += size) yield new Uint8Array(await source.slice(at, Math.min(source.size, at + size)).arrayBuffer());
    return;
  }
  for await (const chunk of source as AsyncIterable<Uint8Array>) {
    for (let at = 0; at < chunk.byteLength; at += size) yield at === 0 && chunk.byteLength <= size ? chunk : chunk.subarray(at, Math.min(chunk.byteLength, at + size));
  }
}

/**
 * Pieces of exactly `size` bytes (the last may be shorter): small input chunks are gathered
 * into one buffer per piece (from `allocate`, which may hand back spent ones), so memory is one
 * piece per consumer in flight.
 */
export async function* fixedPieces(source: UploadSource, size: number, allocate: () => Uint8Array = () => new Uint8Array(size)): AsyncGenerator<Uint8Array> {
  let buffer: Uint8Array | undefined;
  let filled = 0;
  for await (const chunk of pieces(source, size)) {
    if (!buffer && chunk.byteLength === size) {
      yield chunk;
      continue;
    }
    let at = 0;
    while (at < chunk.byteLength) {
      buffer ??= allocate();
      const take = Math.min(size - filled, chunk.byteLength - at);
      buffer.set(chunk.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === size) {
        yield buffer;
        buffer = undefined;
        filled = 0;
      }
    }
  }
  if (buffer && filled > 0) yield buffer.subarray(0, filled);
}
