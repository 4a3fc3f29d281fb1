import { randomUUID } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { FilesError, unavailable } from "../files/errors.js";
import type { ByteRange, IncompleteWrite, ObjectStore, PutOptions, StoredObject } from "../files/ports.js";
import { abortReason, destroyOnAbort, FirstError, guardBody } from "./abortable-body.js";

/** Temp files live inside the store's own directory so the final rename stays on one filesystem. */
const TMP_DIR = ".tmp";
const SEGMENT = /^[A-Za-z0-9._-]+$/;
/** Small body chunks are gathered into writes of about this size: one syscall per chunk is slow. */
const WRITE_BATCH_BYTES = 1024 * 1024;

export interface LocalFsObjectStoreOptions {
  /** The `storage_dir`: created if missing. */
  dir: string;
}

/**
 * The embedded default store: one file per key under `dir`. A put becomes visible only through
 * an atomic rename of a fully written and fsynced temp file, so readers never see a partial object.
 */
export class LocalFsObjectStore implements ObjectStore {
  readonly dir: string;

  constructor(options: LocalFsObjectStoreOptions) {
    this.dir = resolve(options.dir);
  }

  async put(key: string, body: AsyncIterable<Uint8Array>, options: PutOptions): Promise<{ bytes: number }> {
    const target = this.pathFor(key);
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const failure = new FirstError();
    const tmp = join(this.dir, TMP_DIR, `${randomUUID()}.part`);
    let file: FileHandle | undefined;
    let renamed = false;
    try {
      await mkdir(dirname(tmp), { recursive: true });
      file = await open(tmp, "wx");
      await writeBody(file, guardBody(body, signal, failure));
      await file.sync();
      await file.close();
      file = undefined;
      if (signal?.aborted) failure.record(abortReason(signal));
      if (failure.has) throw failure.error;
      await mkdir(dirname(target), { recursive: true });
      await rename(tmp, target);
      renamed = true;
      await syncDir(dirname(target)); // make the rename itself durable
      return { bytes: (await stat(target)).size };
    } catch (err) {
      await file?.close().catch(() => {});
      await rm(renamed ? target : tmp, { force: true }).catch(() => {});
      if (failure.has) throw failure.error;
      throw unavailable("object storage", err);
    }
  }

  async get(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const path = this.pathFor(key);
    if (signal?.aborted) throw abortReason(signal);
    let file: FileHandle;
    try {
      file = await open(path, "r");
    } catch (err) {
      if (isMissing(err)) throw new FilesError("not_found", "The stored object does not exist", undefined, { cause: err });
      throw unavailable("object storage", err);
    }
    let start: number | undefined;
    let end: number | undefined;
    try {
      const info = await file.stat();
      if (!info.isFile()) throw new FilesError("not_found", "The stored object does not exist");
      if (range) {
        // Same answer S3 gives (416): a range must start inside the object.
        if (range.offset >= info.size) {
          throw new FilesError("out_of_range", `offset ${range.offset} is past the end of the stored object`, "offset");
        }
        start = range.offset;
        end = Math.min(range.offset + range.length, info.size) - 1; // inclusive, like an HTTP Range
      }
    } catch (err) {
      await file.close();
      throw err instanceof FilesError ? err : unavailable("object storage", err);
    }
    const stream = file.createReadStream({ start, end, autoClose: true, highWaterMark: 256 * 1024 });
    destroyOnAbort(stream, signal);
    return stream;
  }

  async delete(key: string): Promise<void> {
    const path = this.pathFor(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) throw unavailable("object storage", err);
    }
  }

  async head(key: string): Promise<{ bytes: number } | undefined> {
    const path = this.pathFor(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { bytes: info.size } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw unavailable("object storage", err);
    }
  }

  /** Writes and removes a probe file: `access(W_OK)` says yes to root even on a read-only mount. */
  async ping(): Promise<void> {
    const probe = join(this.dir, TMP_DIR, `ping-${randomUUID()}`);
    try {
      await mkdir(dirname(probe), { recursive: true });
      const file = await open(probe, "wx");
      await file.close();
      await unlink(probe);
    } catch (err) {
      await rm(probe, { force: true }).catch(() => {});
      throw unavailable("object storage", err);
    }
  }

  /** Walks the directory (temp files aside) from the deepest folder the prefix names. */
  async *list(prefix: string): AsyncGenerator<StoredObject> {
    const folders = prefix.split("/").slice(0, -1);
    if (folders[0] === TMP_DIR || folders.some((s) => s === "." || s === ".." || !SEGMENT.test(s))) throw new Error(`invalid key prefix for the local store: ${JSON.stringify(prefix)}`);
    const start = folders.map((f) => `${f}/`).join("");
    for await (const key of this.walk(start)) {
      if (!key.startsWith(prefix)) continue;
      try {
        const info = await stat(join(this.dir, ...key.split("/")));
        yield { key, bytes: info.size, lastModified: Math.floor(info.mtimeMs / 1000) };
      } catch (err) {
        if (!isMissing(err)) throw unavailable("object storage", err); // removed since it was listed: skip it
      }
    }
  }

  /**
   * Temp files of puts that never finished. They belong to no key (see IncompleteWrite.key), so
   * every prefix lists them; only this store's own directory holds them.
   */
  async *listIncomplete(_prefix: string): AsyncGenerator<IncompleteWrite> {
    for (const name of await this.readDir(join(this.dir, TMP_DIR))) {
      if (!name.isFile()) continue;
      try {
        const info = await stat(join(this.dir, TMP_DIR, name.name));
        yield { key: null, id: name.name, lastModified: Math.floor(info.mtimeMs / 1000) };
      } catch (err) {
        if (!isMissing(err)) throw unavailable("object storage", err);
      }
    }
  }

  async abortIncomplete(write: IncompleteWrite): Promise<void> {
    if (write.id === "." || write.id === ".." || !SEGMENT.test(write.id)) {
      throw new Error(`invalid temp file name for the local store: ${JSON.stringify(write.id)}`);
    }
    try {
      await rm(join(this.dir, TMP_DIR, write.id), { force: true });
    } catch (err) {
      throw unavailable("object storage", err);
    }
  }

  /** Keys of the files under `folder` (a key prefix ending in "/", or ""), depth first in name order. */
  private async *walk(folder: string): AsyncGenerator<string> {
    const entries = await this.readDir(join(this.dir, ...folder.split("/").filter(Boolean)));
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (folder === "" && entry.name === TMP_DIR) continue;
      if (entry.isDirectory()) yield* this.walk(`${folder}${entry.name}/`);
      else if (entry.isFile()) yield `${folder}${entry.name}`;
    }
  }

  /** A missing directory is an empty one (nothing was ever stored under it). */
  private async readDir(path: string) {
    try {
      return await readdir(path, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw unavailable("object storage", err);
    }
  }

  /**
   * Keys come from validated file ids plus a configured prefix, so a key that fails here is a
   * bug, not user input: it is rejected outright rather than sanitised into some other path.
   */
  private pathFor(key: string): string {
    const segments = key.split("/");
    const ok =
      key.length > 0 &&
      key.length <= 1024 &&
      !key.includes("..") &&
      segments[0] !== TMP_DIR &&
      segments.every((s) => s !== "." && SEGMENT.test(s));
    if (!ok) throw new Error(`invalid object key for the local store: ${JSON.stringify(key)}`);
    return join(this.dir, ...segments);
  }
}

async function writeBody(file: FileHandle, body: AsyncIterable<Uint8Array>): Promise<void> {
  let batch: Uint8Array[] = [];
  let batched = 0;
  for await (const chunk of body) {
    batch.push(chunk);
    batched += chunk.byteLength;
    if (batched >= WRITE_BATCH_BYTES) {
      await writeAll(file, batch);
      batch = [];
      batched = 0;
    }
  }
  if (batched > 0) await writeAll(file, batch);
}

async function writeAll(file: FileHandle, chunks: Uint8Array[]): Promise<void> {
  const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  for (let offset = 0; offset < data.byteLength; ) {
    const { bytesWritten } = await file.write(data, offset, data.byteLength - offset);
    offset += bytesWritten;
  }
}

async function syncDir(path: string): Promise<void> {
  const dir = await open(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR";
}
