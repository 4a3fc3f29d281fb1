import { cancelled, FilesError, invalidArgument, notFound, orUnavailable, outOfRange } from "./errors.js";
import type { HashedPrefix } from "./part-hash-chain.js";
import { ContentMeter } from "./content-meter.js";
import { UploadSlots } from "./upload-slots.js";
import { isFileId, newFileId } from "./ids.js";
import { isPurpose, type Purpose, type UploadPurpose } from "./purposes.js";
import { validateHead, validateUpload, type UploadHead, type UploadRequest, type ValidUpload } from "./upload-request.js";
import { AccessControl, asUser, attributesOf, FILE_RESOURCE_TYPE } from "./access-control.js";
import { needsServiceFilter, rowMatches } from "./row-predicate.js";
import {
  systemClock,
  type Clock,
  type FileRecord,
  type FileRepository,
  type ListOrder,
  type ListQuery,
  type ObjectStore,
  type Principal,
  type StoredSource,
} from "./ports.js";

export interface FilesServiceOptions {
  store: ObjectStore;
  repository: FileRepository;
  clock?: Clock;
  /** Prepended to every object key, e.g. "tenants/acme/files/". */
  keyPrefix?: string;
  maxFileBytes: number;
  /**
   * The expiry, in seconds after creation, of a file whose client gave no `expires_after`;
   * null means never. Omitted: no default expiry for any purpose.
   */
  defaultTtlSeconds?: (purpose: UploadPurpose) => number | null;
  /** Caps uploads in flight, per principal and overall; shared with UploadsService. Unset: no caps. */
  uploadSlots?: UploadSlots;
  /** Told about objects left behind by a failed clean-up, so they can be logged for reconciliation. */
  onOrphanedObject?: (key: string, error: unknown) => void;
  /** Who may do what; unset: each principal reaches only what it owns. */
  access?: AccessControl;
}

export interface UploadOptions {
  signal?: AbortSignal;
  /** Overrides the service's max file size (assembled Uploads have their own, larger limit). */
  maxBytes?: number;
  /** Lowercase hex MD5 the content must have. */
  md5?: string;
  /** Who the new file belongs to (its attributes are recorded with it); null or unset: no one (authentication off). */
  owner?: Principal;
}

export interface ListRequest {
  after?: string;
  limit?: number;
  order?: ListOrder;
  purpose?: string;
  /** Whose files; null or unset: everyone's (authentication off). */
  owner?: Principal;
}

export interface ListPage {
  data: FileRecord[];
  hasMore: boolean;
  firstId: string | null;
  lastId: string | null;
}

export interface RangeRequest {
  offset: number;
  /** Undefined: to the end of the file. */
  length?: number;
}

export interface Download {
  file: FileRecord;
  /** The bytes actually sent, after clipping the request to the file. */
  offset: number;
  length: number;
  body: AsyncIterable<Uint8Array>;
}

export const MAX_LIST_LIMIT = 10_000;
/** Rows read at a time when the service filters a listing itself. */
const SERVICE_FILTER_BATCH = 500;

/**
 * The files domain: what an upload, a download, a listing and a deletion mean.
 * It knows nothing of HTTP, gRPC, S3 or SQL; transports call it and adapters serve it.
 */
export class FilesService {
  private readonly store: ObjectStore;
  private readonly repository: FileRepository;
  private readonly clock: Clock;
  private readonly keyPrefix: string;
  /** Held by every upload while its bytes stream in, whichever transport or path it came by. */
  readonly uploadSlots: UploadSlots;
  readonly access: AccessControl;

  constructor(private readonly options: FilesServiceOptions) {
    this.store = options.store;
    this.repository = options.repository;
    this.clock = options.clock ?? systemClock;
    this.keyPrefix = options.keyPrefix ?? "";
    this.uploadSlots = options.uploadSlots ?? new UploadSlots();
    this.access = options.access ?? new AccessControl();
  }

  /**
   * Streams `chunks` into storage and records the file. The object is written and verified
   * first and the row committed last, so a file is visible only when all of it is stored;
   * any failure or cancellation leaves neither object nor row.
   */
  async upload(request: UploadRequest, chunks: AsyncIterable<Uint8Array>, options: UploadOptions = {}): Promise<FileRecord> {
    const upload = validateUpload(request, options.maxBytes ?? this.options.maxFileBytes);
    return this.write(upload, chunks, async () => upload, options);
  }

  /**
   * For transports that may receive the bytes before the rest of the metadata (a multipart form
   * with `purpose` after `file`). The bytes stream to a key no row points at, so they stay invisible;
   * the row is written only once `describe` resolves with valid metadata, and otherwise the object is removed.
   */
  async uploadThenDescribe(
    head: UploadHead & { purpose?: string },
    chunks: AsyncIterable<Uint8Array>,
    describe: () => Promise<Omit<UploadRequest, keyof UploadHead>>,
    options: UploadOptions = {},
  ): Promise<FileRecord> {
    const valid = validateHead(head);
    const maxBytes = options.maxBytes ?? this.options.maxFileBytes;
    return this.write(valid, chunks, async () => validateUpload({ ...head, ...(await describe()) }, maxBytes), options);
  }

  /** Every upload path holds an upload slot while its bytes stream in (see UploadSlots). */
  private async write(
    head: { mimeType: string; sizeBytes?: number; sha256?: string },
    chunks: AsyncIterable<Uint8Array>,
    describe: () => Promise<ValidUpload>,
    options: UploadOptions,
  ): Promise<FileRecord> {
    const release = this.uploadSlots.acquire(asUser(options.owner)?.principal ?? null);
    try {
      return await this.storeAndRecord(head, chunks, describe, options);
    } finally {
      release();
    }
  }

  private async storeAndRecord(
    head: { mimeType: string; sizeBytes?: number; sha256?: string },
    chunks: AsyncIterable<Uint8Array>,
    describe: () => Promise<ValidUpload>,
    options: UploadOptions,
  ): Promise<FileRecord> {
    const { signal } = options;
    const id = newFileId();
    this.checkCreate(id, options.owner);
    const storageKey = this.keyPrefix + id;
    const meter = new ContentMeter({
      maxBytes: options.maxBytes ?? this.options.maxFileBytes,
      declaredSize: head.sizeBytes,
      declaredSha256: head.sha256,
      declaredMd5: options.md5,
    });

    const stored = await this.store.put(storageKey, meter.wrap(chunks), {
      sizeHint: head.sizeBytes,
      contentType: head.mimeType,
      signal,
    });
    return this.orRemove(storageKey, async () => {
      checkStoredSize(stored.bytes, meter.bytes, "were received; the upload was discarded");
      const upload = await describe();
      // A client that cancels right after its last chunk may still have sent a clean end of stream;
      // its cancel is honoured up to the moment the row is committed.
      if (signal?.aborted) throw cancelled();
      return this.commit(id, storageKey, upload, meter, options);
    });
  }

  /**
   * A file made of objects already stored, in order (an Upload's parts). When the store can join
   * them itself (S3 copies them server-side), no byte passes through this process on the way in;
   * the result is read back once, for its SHA-256 and the declared size and MD5, before its row is
   * committed. Resolves undefined when the store cannot join these sources: stream them instead.
   */
  async uploadComposed(
    request: UploadRequest,
    sources: readonly StoredSource[],
    options: UploadOptions & { hashedPrefix?: HashedPrefix } = {},
  ): Promise<FileRecord | undefined> {
    if (!this.store.compose) return undefined;
    const maxBytes = options.maxBytes ?? this.options.maxFileBytes;
    const upload = validateUpload(request, maxBytes);
    const release = this.uploadSlots.acquire(asUser(options.owner)?.principal ?? null);
    try {
      const id = newFileId();
      this.checkCreate(id, options.owner);
      const storageKey = this.keyPrefix + id;
      const composed = await this.store.compose(storageKey, sources, { contentType: upload.mimeType });
      if (!composed) return undefined;
      return await this.orRemove(storageKey, async () => {
        // The SHA-256 of the sources already hashed as they arrived is continued over the rest,
        // read back from the sources; with none, the joined object is read back whole.
        const prefix = options.hashedPrefix?.parts && options.md5 === undefined ? options.hashedPrefix : undefined;
        const meter = new ContentMeter({ maxBytes, declaredSize: upload.sizeBytes, declaredSha256: upload.sha256, declaredMd5: options.md5, resumeFrom: prefix });
        const rest = prefix ? this.readSources(sources.slice(prefix.parts), options.signal) : await this.store.get(storageKey, undefined, options.signal);
        for await (const chunk of meter.wrap(rest)) void chunk;
        checkStoredSize(composed.bytes, meter.bytes, "were read back; the file was discarded");
        if (options.signal?.aborted) throw cancelled();
        return this.commit(id, storageKey, upload, meter, options);
      });
    } finally {
      release();
    }
  }

  private async *readSources(sources: readonly StoredSource[], signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    for (const source of sources) yield* await this.store.get(source.key, undefined, signal);
  }

  /** Creating is asked about the file it would be: its new id, owned by the caller. */
  private checkCreate(id: string, owner: Principal | undefined): void {
    const ownerPrincipal = asUser(owner)?.principal ?? null;
    this.access.checkWrite("create", FILE_RESOURCE_TYPE, { id, ownerPrincipal, accessAttributes: attributesOf(owner) }, owner, "file");
  }

  /** Runs what follows a stored object; if any of it fails, the object goes, so no half-made file is left. */
  private async orRemove<T>(storageKey: string, steps: () => Promise<T>): Promise<T> {
    try {
      return await steps();
    } catch (err) {
      await this.removeObject(storageKey);
      throw err;
    }
  }

  /** Writes the row that makes a stored object a file. */
  private async commit(id: string, storageKey: string, upload: ValidUpload, meter: ContentMeter, options: UploadOptions): Promise<FileRecord> {
    const createdAt = this.clock.now();
    const ttl = upload.expiresAfterSeconds ?? this.options.defaultTtlSeconds?.(upload.purpose) ?? null;
    const record: FileRecord = {
      id,
      filename: upload.filename,
      purpose: upload.purpose,
      bytes: meter.bytes,
      createdAt,
      expiresAt: ttl === null ? null : createdAt + ttl,
      mimeType: upload.mimeType,
      sha256: meter.sha256,
      storageKey,
      status: "processed",
      ownerPrincipal: asUser(options.owner)?.principal ?? null,
    };
    const accessAttributes = attributesOf(options.owner);
    if (accessAttributes) record.accessAttributes = accessAttributes;
    await this.metadata(() => this.repository.insert(record));
    return record;
  }

  /** The file, if `owner` may read it: a file the policy hides is "not found", exactly like a missing one. */
  async get(id: string, owner: Principal = null): Promise<FileRecord> {
    // A malformed id cannot name a stored file: it is simply not found, and never reaches SQL or a path.
    if (!isFileId(id)) throw notFound(id);
    const record = await this.metadata(() => this.repository.findById(id, this.clock.now()));
    if (!record) throw notFound(id);
    this.access.checkRead(FILE_RESOURCE_TYPE, record, owner, "file_id", "file");
    return record;
  }

  async download(
    id: string,
    range: RangeRequest = { offset: 0 },
    options: { signal?: AbortSignal; owner?: Principal } = {},
  ): Promise<Download> {
    return this.read(await this.get(id, options.owner ?? null), range, options.signal);
  }

  /** Streams a file already looked up with get(), for callers that need its size before choosing the range. */
  async read(file: FileRecord, range: RangeRequest = { offset: 0 }, signal?: AbortSignal): Promise<Download> {
    const { offset, length } = clipRange(range, file.bytes);
    const body = length === 0 ? emptyBody() : await this.store.get(file.storageKey, { offset, length }, signal);
    return { file, offset, length, body };
  }

  async list(request: ListRequest = {}): Promise<ListPage> {
    const limit = request.limit ?? MAX_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw invalidArgument("limit", `limit must be an integer between 1 and ${MAX_LIST_LIMIT}`);
    }
    const order = request.order ?? "desc";
    let purpose: Purpose | undefined;
    if (request.purpose) {
      if (!isPurpose(request.purpose)) throw invalidArgument("purpose", `purpose '${request.purpose}' is not a known purpose`);
      purpose = request.purpose;
    }
    const now = this.clock.now();
    let after: { createdAt: number; id: string } | undefined;
    const owner = request.owner ?? null;
    if (request.after) {
      const cursor = isFileId(request.after) ? await this.metadata(() => this.repository.position(request.after!)) : undefined;
      // A file the caller may not read is as unknown here as everywhere else.
      if (!cursor || !this.access.allows("read", FILE_RESOURCE_TYPE, cursor, owner)) {
        throw invalidArgument("after", `after: no such file '${request.after}'`);
      }
      after = { createdAt: cursor.createdAt, id: cursor.id };
    }
    const rows = await this.listVisible({ after, limit: limit + 1, order, purpose, now }, owner);
    const data = rows.slice(0, limit);
    return {
      data,
      hasMore: rows.length > limit,
      firstId: data[0]?.id ?? null,
      lastId: data.at(-1)?.id ?? null,
    };
  }

  /**
   * The repository filters by the policy's predicate when it can express it (every policy but
   * those with `regex:` resources); otherwise this walks the listing in batches and filters here,
   * still in keyset order, until it has `limit` visible rows or the listing ends.
   */
  private async listVisible(query: Omit<ListQuery, "visible">, owner: Principal): Promise<FileRecord[]> {
    const visible = this.access.visibleRows(FILE_RESOURCE_TYPE, owner);
    if (!needsServiceFilter(visible)) return this.metadata(() => this.repository.list({ ...query, visible }));
    const found: FileRecord[] = [];
    const batch = Math.min(MAX_LIST_LIMIT, Math.max(SERVICE_FILTER_BATCH, query.limit));
    let after = query.after;
    for (;;) {
      const rows = await this.metadata(() => this.repository.list({ ...query, after, limit: batch }));
      for (const row of rows) {
        if (rowMatches(visible, row)) found.push(row);
        if (found.length === query.limit) return found;
      }
      if (rows.length < batch) return found;
      const last = rows.at(-1)!;
      after = { createdAt: last.createdAt, id: last.id };
    }
  }

  /**
   * Removes the row first, so the file disappears at once and never points at missing bytes;
   * an object whose removal then fails is only an orphan, reported for reconciliation.
   */
  async delete(id: string, owner: Principal = null): Promise<{ id: string; deleted: true }> {
    const file = await this.get(id, owner);
    this.access.checkWrite("delete", FILE_RESOURCE_TYPE, file, owner, "file");
    if (!(await this.metadata(() => this.repository.delete(id, this.clock.now())))) throw notFound(id);
    await this.removeObject(file.storageKey);
    return { id, deleted: true };
  }

  /** Repository failures that are not already core errors mean the database could not do its job. */
  private metadata<T>(operation: () => Promise<T>): Promise<T> {
    return orUnavailable("The metadata store", operation);
  }

  private async removeObject(key: string): Promise<void> {
    try {
      await this.store.delete(key);
    } catch (err) {
      this.options.onOrphanedObject?.(key, err);
    }
  }
}

function clipRange(range: RangeRequest, size: number): { offset: number; length: number } {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument("offset", "offset must be a non-negative integer");
  if (offset > size) throw outOfRange("offset", `offset ${offset} is past the end of the file (${size} bytes)`);
  if (length === undefined) return { offset, length: size - offset };
  if (!Number.isSafeInteger(length) || length < 0) throw invalidArgument("length", "length must be a non-negative integer");
  return { offset, length: Math.min(length, size - offset) };
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}

/** The store must hold exactly the bytes that were counted on the way. */
function checkStoredSize(stored: number, counted: number, outcome: string): void {
  if (stored !== counted) throw new FilesError("internal", `Storage holds ${stored} bytes but ${counted} ${outcome}`);
}
