import { FilesError } from "../../src/files/errors.js";
import { systemClock, type ByteRange, type Clock, type IncompleteWrite, type ObjectStore, type PutOptions, type StoredObject } from "../../src/files/ports.js";
import { abortReason, FirstError, guardBody } from "../../src/storage/abortable-body.js";

/** Chunk size `get` streams in, so consumers see more than one chunk for larger objects. */
const READ_CHUNK = 64 * 1024;

/**
 * An ObjectStore in a Map, for fast core tests. It keeps the same promises as the real
 * stores (nothing left behind on a failed put, not_found, ranges) and can inject faults.
 */
export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, Buffer>();
  private readonly modified = new Map<string, number>();
  private readonly incomplete = new Map<string, IncompleteWrite>();
  /** Stamps `lastModified` on puts; tests may swap in their own clock. */
  clock: Clock = systemClock;
  private nextPutFailure: { afterBytes: number; error: Error } | undefined;
  private pingError: Error | undefined;
  /** Every put attempt's key, in order, successful or not. */
  readonly putKeys: string[] = [];
  /** Every key deleted, in order (failed deletes are not listed). */
  readonly deletedKeys: string[] = [];
  /** Deletes of these keys fail, as S3 refusing a request would (fault injection). */
  readonly failingDeletes = new Set<string>();

  /**
   * Makes the next put fail, as a store would mid-upload: once it has taken more than `n` bytes
   * of the body, or at the body's end if it is shorter. Returns the error it will throw
   * (a FilesError "unavailable" unless one is given).
   */
  failNextPutAfterBytes(n: number, error: Error = new FilesError("unavailable", "object storage is unavailable; try again later")): Error {
    this.nextPutFailure = { afterBytes: n, error };
    return error;
  }

  /** Makes ping throw until called again with undefined. */
  failPing(error: Error | undefined = new FilesError("unavailable", "object storage is unavailable; try again later")): void {
    this.pingError = error;
  }

  /** The stored keys (sorted), for "nothing left behind" assertions. */
  keys(): string[] {
    return [...this.objects.keys()].sort();
  }

  /** A copy of the stored bytes, or undefined. */
  bytesOf(key: string): Buffer | undefined {
    const data = this.objects.get(key);
    return data && Buffer.from(data);
  }

  async put(key: string, body: AsyncIterable<Uint8Array>, options: PutOptions): Promise<{ bytes: number }> {
    this.putKeys.push(key);
    const fault = this.nextPutFailure;
    this.nextPutFailure = undefined;
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const failure = new FirstError();
    const chunks: Buffer[] = [];
    let received = 0;
    try {
      for await (const chunk of guardBody(body, signal, failure)) {
        received += chunk.byteLength;
        if (fault && received > fault.afterBytes) throw fault.error;
        chunks.push(Buffer.from(chunk)); // copy: the caller may reuse its buffers
      }
      if (fault) throw fault.error;
      if (signal?.aborted) throw abortReason(signal);
    } catch (err) {
      throw failure.has ? failure.error : err;
    }
    const data = Buffer.concat(chunks);
    this.objects.set(key, data);
    this.modified.set(key, this.clock.now());
    return { bytes: data.byteLength };
  }

  async get(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    if (signal?.aborted) throw abortReason(signal);
    const data = this.objects.get(key);
    if (!data) throw new FilesError("not_found", "The stored object does not exist");
    let start = 0;
    let end = data.byteLength;
    if (range) {
      if (range.offset >= data.byteLength) {
        throw new FilesError("out_of_range", `offset ${range.offset} is past the end of the stored object`, "offset");
      }
      start = range.offset;
      end = Math.min(range.offset + range.length, data.byteLength);
    }
    return (async function* () {
      for (let at = start; at < end; at += READ_CHUNK) {
        if (signal?.aborted) throw abortReason(signal);
        yield data.subarray(at, Math.min(at + READ_CHUNK, end));
      }
    })();
  }

  async delete(key: string): Promise<void> {
    if (this.failingDeletes.has(key)) throw new FilesError("unavailable", "object storage is unavailable; try again later");
    this.deletedKeys.push(key);
    this.objects.delete(key);
    this.modified.delete(key);
  }

  /** Like S3's DeleteObjects: per-key outcomes, the keys it could not remove answered back. */
  async deleteMany(keys: readonly string[]): Promise<string[]> {
    const failed: string[] = [];
    for (const key of keys) await this.delete(key).catch(() => failed.push(key));
    return failed;
  }

  async head(key: string): Promise<{ bytes: number } | undefined> {
    const data = this.objects.get(key);
    return data && { bytes: data.byteLength };
  }

  async ping(): Promise<void> {
    if (this.pingError) throw this.pingError;
  }

  /** In key order, as S3 lists. */
  async *list(prefix: string): AsyncGenerator<StoredObject> {
    for (const key of this.keys()) {
      const data = this.objects.get(key);
      if (key.startsWith(prefix) && data) yield { key, bytes: data.byteLength, lastModified: this.modified.get(key) ?? 0 };
    }
  }

  async *listIncomplete(prefix: string): AsyncGenerator<IncompleteWrite> {
    for (const write of [...this.incomplete.values()]) {
      if (write.key === null || write.key.startsWith(prefix)) yield { ...write };
    }
  }

  async abortIncomplete(write: IncompleteWrite): Promise<void> {
    this.incomplete.delete(write.id);
  }

  /** Leaves an unfinished write behind, as a crash mid-put would; returns its handle. */
  addIncomplete(key: string | null, lastModified = this.clock.now()): IncompleteWrite {
    const write = { key, id: `incomplete-${this.incomplete.size + 1}-${Math.random().toString(36).slice(2)}`, lastModified };
    this.incomplete.set(write.id, write);
    return { ...write };
  }

  /** Back-dates (or forward-dates) an object, to test age-based decisions without waiting. */
  setLastModified(key: string, lastModified: number): void {
    if (!this.objects.has(key)) throw new Error(`no object ${key}`);
    this.modified.set(key, lastModified);
  }
}
