import { Code, ConnectError } from "@connectrpc/connect";

/** One gRPC length-prefixed message: its flags byte (bit 0: compressed) and its bytes. */
export interface Envelope {
  flags: number;
  data: Uint8Array;
}

const PREFIX_BYTES = 5;

/**
 * Splits the bytes of an HTTP/2 request body into gRPC length-prefixed messages, as DATA frames
 * arrive. A message that lies within one frame is returned as a view of it (no copy); one spread
 * over several frames is copied once, into a buffer of exactly its size, allocated as soon as the
 * prefix names the size. A size over `maxBytes` is refused from the prefix alone, before the
 * bytes are waited for.
 */
export class EnvelopeSplitter {
  private readonly prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly maxBytes: number) {}

  /** True while a message has begun but not ended (at the end of the body, a truncated message). */
  get midMessage(): boolean {
    return this.prefixFill > 0;
  }

  /** Appends the messages that `chunk` completes to `out`. */
  push(chunk: Buffer, out: Envelope[]): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.prefixFill < PREFIX_BYTES) {
        if (this.prefixFill === 0 && chunk.length - at >= PREFIX_BYTES) {
          // The common case: the whole prefix, and often the whole message, in this chunk.
          const length = this.lengthOf(chunk.readUInt32BE(at + 1));
          const flags = chunk[at]!;
          if (chunk.length - at - PREFIX_BYTES >= length) {
            out.push({ flags, data: chunk.subarray(at + PREFIX_BYTES, at + PREFIX_BYTES + length) });
            at += PREFIX_BYTES + length;
            continue;
          }
          chunk.copy(this.prefix, 0, at, at + PREFIX_BYTES);
          this.prefixFill = PREFIX_BYTES;
          at += PREFIX_BYTES;
        } else {
          const n = Math.min(PREFIX_BYTES - this.prefixFill, chunk.length - at);
          chunk.copy(this.prefix, this.prefixFill, at, at + n);
          this.prefixFill += n;
          at += n;
          if (this.prefixFill < PREFIX_BYTES) return;
        }
        const length = this.lengthOf(this.prefix.readUInt32BE(1));
        if (length === 0) {
          out.push({ flags: this.prefix[0]!, data: new Uint8Array(0) });
          this.prefixFill = 0;
          continue;
        }
        this.body = Buffer.allocUnsafe(length);
        this.bodyFill = 0;
        continue;
      }
      const body = this.body!;
      const n = Math.min(body.length - this.bodyFill, chunk.length - at);
      chunk.copy(body, this.bodyFill, at, at + n);
      this.bodyFill += n;
      at += n;
      if (this.bodyFill === body.length) {
        out.push({ flags: this.prefix[0]!, data: body });
        this.body = undefined;
        this.prefixFill = 0;
      }
    }
  }

  private lengthOf(length: number): number {
    if (length > this.maxBytes) {
      throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${this.maxBytes}`, Code.ResourceExhausted);
    }
    return length;
  }
}
