import { createHash, type Hash } from "node:crypto";
import { invalidArgument, tooLarge } from "./errors.js";

export interface MeterLimits {
  /** Hard cap on the content size. */
  maxBytes: number;
  /** The size the client declared, if any: more or fewer bytes fail the upload. */
  declaredSize?: number;
  /** The lowercase hex SHA-256 the client declared, if any. */
  declaredSha256?: string;
  /** What the content is, for the too-large error: defaults to the request's `file`. */
  subject?: { param: string; noun: string };
  /** The lowercase hex MD5 the client declared, if any (OpenAI's Uploads API offers one). */
  declaredMd5?: string;
  /** Content already hashed elsewhere, which this meter continues from (not with declaredMd5). */
  resumeFrom?: { hash: Hash; bytes: number };
}

/**
 * Counts and hashes content in the single pass it takes on its way to storage,
 * and fails the stream as soon as it breaks a limit. Because the failure is thrown
 * from inside the body the store is reading, the store aborts before it commits:
 * a bad upload never becomes a visible object.
 */
export class ContentMeter {
  private readonly hash: Hash;
  // MD5 costs a second pass over every byte, so it runs only when there is a declared value to check.
  private readonly md5: Hash | undefined;
  private count = 0;
  private digest: string | undefined;

  constructor(private readonly limits: MeterLimits) {
    this.md5 = limits.declaredMd5 === undefined ? undefined : createHash("md5");
    if (limits.resumeFrom && this.md5) throw new Error("ContentMeter: an MD5 cannot resume from another hash");
    this.hash = limits.resumeFrom?.hash ?? createHash("sha256");
    this.count = limits.resumeFrom?.bytes ?? 0;
  }

  get bytes(): number {
    return this.count;
  }

  /** The hex SHA-256; available once the wrapped stream has ended. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error("ContentMeter: stream not finished");
    return this.digest;
  }

  async *wrap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    const { maxBytes, declaredSize } = this.limits;
    for await (const chunk of source) {
      if (chunk.byteLength === 0) continue;
      this.count += chunk.byteLength;
      if (this.count > maxBytes) {
        const { param, noun } = this.limits.subject ?? { param: "file", noun: "file" };
        throw tooLarge(`The ${noun} is larger than the limit of ${maxBytes} bytes`, param);
      }
      if (declaredSize !== undefined && this.count > declaredSize) {
        throw invalidArgument("size_bytes", `size_bytes: received more than the declared ${declaredSize} bytes`);
      }
      this.hash.update(chunk);
      this.md5?.update(chunk);
      yield chunk;
    }
    this.finish();
  }

  private finish(): void {
    const { declaredSize, declaredSha256 } = this.limits;
    if (declaredSize !== undefined && this.count !== declaredSize) {
      throw invalidArgument("size_bytes", `size_bytes: ${declaredSize} bytes were declared but ${this.count} were received`);
    }
    const digest = this.hash.digest("hex");
    if (declaredSha256 !== undefined && digest !== declaredSha256) {
      throw invalidArgument("sha256", `sha256: the content's SHA-256 is ${digest}, not the declared ${declaredSha256}`);
    }
    const md5 = this.md5?.digest("hex");
    if (md5 !== undefined && md5 !== this.limits.declaredMd5) {
      throw invalidArgument("md5", `The content's MD5 is ${md5}, not the declared ${this.limits.declaredMd5}`);
    }
    this.digest = digest;
  }
}
