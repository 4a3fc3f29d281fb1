/**
 * A deterministic benchmark payload, generated block by block so no client ever holds all of it.
 *
 * A small pool of pseudo-random 1 MiB buffers comes from an AES-128-CTR keystream with a fixed
 * key (the same bytes in every run, no compressible or repeated parts). Each yielded block is a
 * fresh copy of one pool buffer with its block index written into its first 8 bytes, so every
 * block is unique, and consumers may keep references to blocks without them changing later.
 */
import { createCipheriv, createHash } from "node:crypto";

export const MiB = 1024 * 1024;
/** Bytes per yielded block. */
export const BLOCK = MiB;
const POOL_SIZE = 4;

/**
 * The pool: POOL_SIZE blocks of the keystream of AES-128-CTR with key 16 × 0x42 and IV 0, in order.
 * Block `i` of a payload is pool block `i % POOL_SIZE` with `i` written big-endian into its first
 * 8 bytes (the Go and Python bench clients build the same bytes).
 */
export function payloadPool(): Buffer[] {
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 0x42), Buffer.alloc(16, 0));
  return Array.from({ length: POOL_SIZE }, () => cipher.update(Buffer.alloc(BLOCK)));
}

export class Payload {
  private readonly pool: Buffer[];

  constructor(readonly bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`payload size must be a non-negative integer, got ${bytes}`);
    this.pool = payloadPool();
  }

  /** The payload as fresh blocks of up to 1 MiB (the last one may be shorter); optionally only blocks [first, first + count). */
  *blocks(first = 0, count = Infinity): Generator<Buffer> {
    for (let index = first, at = first * BLOCK; at < this.bytes && index < first + count; index++, at += BLOCK) {
      const length = Math.min(BLOCK, this.bytes - at);
      const block = Buffer.allocUnsafe(length);
      this.pool[index % POOL_SIZE]!.copy(block, 0, 0, length);
      if (length >= 8) block.writeBigUInt64BE(BigInt(index), 0);
      yield block;
    }
  }

  /** The lowercase hex SHA-256 of the whole payload (one streaming pass). */
  sha256(): string {
    const hash = createHash("sha256");
    for (const block of this.blocks()) hash.update(block);
    return hash.digest("hex");
  }
}

/** Hashes and counts a stream of chunks as they arrive (nothing is buffered). */
export class StreamDigest {
  private readonly hash = createHash("sha256");
  bytes = 0;

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.byteLength;
  }

  digest(): string {
    return this.hash.digest("hex");
  }
}
