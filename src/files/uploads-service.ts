import { ContentMeter } from "./content-meter.js";
import { conflict, FilesError, invalidArgument, notFound, orUnavailable, tooLarge } from "./errors.js";
import type { FilesService } from "./files-service.js";
import { isPartId, isUploadId, newPartId, newUploadId } from "./ids.js";
import { asUser, attributesOf, UPLOAD_RESOURCE_TYPE } from "./access-control.js";
import { PartHashChains, type PartTap } from "./part-hash-chain.js";
import {
  systemClock,
  type Clock,
  type FileRecord,
  type Principal,
  type ObjectStore,
  type UploadPartRecord,
  type UploadRecord,
  type UploadRepository,
  type UploadStatus,
  uploadLapsed,
} from "./ports.js";
import { validateUpload } from "./upload-request.js";

export interface UploadsServiceOptions {
  files: FilesService;
  store: ObjectStore;
  repository: UploadRepository;
  clock?: Clock;
  /** Prepended to every part's object key, like the files' own keys. */
  keyPrefix?: string;
  /** Largest total an upload may declare (OpenAI: 8 GB). */
  maxUploadBytes: number;
  /** Largest single part (OpenAI: 64 MB). */
  maxPartBytes: number;
  /** How long an upload may stay pending (OpenAI: one hour). */
  ttlSeconds?: number;
  onOrphanedObject?: (key: string, error: unknown) => void;
  /** Memory for parts that arrive ahead of an earlier one, so completing need not read the file back to hash it (PartHashChains). */
  partHashBufferBytes?: number;
}

export interface CreateUploadRequest {
  filename: string;
  purpose: string;
  bytes: number;
  mimeType?: string;
  /** Expiry of the finished file, in seconds after its creation. */
  expiresAfterSeconds?: number;
  /** Who the upload (and the file it becomes) belongs to; null or unset: no one (authentication off). */
  owner?: Principal;
}

/** An upload as clients see it: in-flight states read as "pending", and a completed upload carries its file. */
export interface UploadView {
  upload: UploadRecord & { status: Exclude<UploadStatus, "completing"> };
  file: FileRecord | null;
}

export const DEFAULT_UPLOAD_TTL_SECONDS = 3600;
/** The service's own re-reads of an upload the caller was already allowed to reach: no policy check. */
const INTERNAL = null;
/** More parts than this is abuse, not a file: 10,000 parts of 64 MB already exceed any upload limit. */
export const MAX_PARTS_PER_UPLOAD = 10_000;
const MD5_HEX = /^[0-9a-f]{32}$/;
/** Enough for the parts a few clients send at once (the client libraries: 4 of 6 MiB each). */
export const DEFAULT_PART_HASH_BUFFER_BYTES = 64 * 1024 * 1024;
/** Parts removed at once when an upload ends. */
const CLEANUP_CONCURRENCY = 8;

/**
 * OpenAI's Uploads: a file sent as parts, in any order and in parallel, then assembled.
 *
 * Each part is stored as its own object, and its size and SHA-256 are recorded in the database,
 * so any replica can take any part. Completing streams the parts, in the order the client names,
 * through FilesService.upload: the file gets the same size, SHA-256 (and optional MD5) checks and
 * the same object-then-row commit as any other upload, with memory bounded by the store's part buffer.
 * S3 wants multipart parts of at least 5 MiB, OpenAI parts may be smaller, and a SHA-256 of the whole
 * needs the bytes in order anyway; reading the parts back serves all three.
 */
export class UploadsService {
  private readonly clock: Clock;
  private readonly keyPrefix: string;
  private readonly ttlSeconds: number;
  private readonly hashChains: PartHashChains;

  private get access() {
    return this.options.files.access;
  }

  constructor(private readonly options: UploadsServiceOptions) {
    this.clock = options.clock ?? systemClock;
    this.keyPrefix = options.keyPrefix ?? "";
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_UPLOAD_TTL_SECONDS;
    this.hashChains = new PartHashChains(options.partHashBufferBytes ?? DEFAULT_PART_HASH_BUFFER_BYTES);
  }

  async create(request: CreateUploadRequest): Promise<UploadView> {
    const { bytes } = request;
    if (!Number.isSafeInteger(bytes) || bytes < 1) throw invalidArgument("bytes", "bytes must be a positive integer");
    if (bytes > this.options.maxUploadBytes) {
      throw tooLarge(`bytes ${bytes} is larger than the upload limit of ${this.options.maxUploadBytes} bytes`, "bytes");
    }
    const valid = validateUpload(
      { filename: request.filename, purpose: request.purpose, mimeType: request.mimeType, expiresAfterSeconds: request.expiresAfterSeconds },
      this.options.maxUploadBytes,
    );
    const createdAt = this.clock.now();
    const id = newUploadId();
    const ownerPrincipal = asUser(request.owner)?.principal ?? null;
    const accessAttributes = attributesOf(request.owner);
    this.access.checkWrite("create", UPLOAD_RESOURCE_TYPE, { id, ownerPrincipal, accessAttributes }, request.owner, "upload");
    const upload: UploadRecord = {
      id,
      filename: valid.filename,
      purpose: valid.purpose,
      bytes,
      mimeType: valid.mimeType,
      createdAt,
      expiresAt: createdAt + this.ttlSeconds,
      fileExpiresAfterSeconds: valid.expiresAfterSeconds ?? null,
      status: "pending",
      fileId: null,
      ownerPrincipal,
      ...(accessAttributes && { accessAttributes }),
    };
    await this.metadata(() => this.options.repository.insertUpload(upload));
    return { upload: { ...upload, status: "pending" }, file: null };
  }

  async get(id: string, owner: Principal = null): Promise<UploadView> {
    return this.view(await this.load(id, owner));
  }

  /**
   * Stores one part. Parts may be of any size up to the part limit, may arrive in any order and
   * in parallel, and only count once `complete` names them.
   */
  async addPart(
    id: string,
    chunks: AsyncIterable<Uint8Array>,
    options: { signal?: AbortSignal; owner?: Principal } = {},
  ): Promise<UploadPartRecord> {
    const upload = await this.load(id, options.owner ?? null);
    this.access.checkWrite("update", UPLOAD_RESOURCE_TYPE, upload, options.owner, "upload");
    assertPending(upload, "add a part to");
    const release = this.options.files.uploadSlots.acquire(upload.ownerPrincipal);
    try {
      return await this.storePart(upload, chunks, options.signal);
    } finally {
      release();
    }
  }

  private async storePart(upload: UploadRecord, chunks: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<UploadPartRecord> {
    const id = upload.id;
    const existing = await this.metadata(() => this.options.repository.countParts(id));
    if (existing >= MAX_PARTS_PER_UPLOAD) {
      throw invalidArgument("data", `Upload '${id}' already has ${MAX_PARTS_PER_UPLOAD} parts, the most one upload may have`);
    }

    const partId = newPartId();
    const tap = this.hashChains.begin(id, partId);
    try {
      const part = await this.storeTappedPart(upload, partId, tap, chunks, signal);
      tap.end(true);
      return part;
    } catch (err) {
      tap.end(false);
      throw err;
    }
  }

  private async storeTappedPart(
    upload: UploadRecord,
    partId: string,
    tap: PartTap,
    chunks: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<UploadPartRecord> {
    const id = upload.id;
    const storageKey = `${this.keyPrefix}uploads/${id}/${partId}`;
    const meter = new ContentMeter({
      maxBytes: Math.min(this.options.maxPartBytes, upload.bytes),
      subject: { param: "data", noun: "part" },
    });
    const stored = await this.options.store.put(storageKey, tap.wrap(meter.wrap(chunks)), {
      contentType: "application/octet-stream",
      signal,
    });
    const part: UploadPartRecord = {
      id: partId,
      uploadId: id,
      bytes: meter.bytes,
      sha256: meter.sha256,
      storageKey,
      createdAt: this.clock.now(),
    };
    try {
      if (meter.bytes === 0) throw invalidArgument("data", "The part is empty");
      if (stored.bytes !== meter.bytes) {
        throw new FilesError("internal", `Storage holds ${stored.bytes} bytes but ${meter.bytes} were received; the part was discarded`);
      }
      await this.metadata(() => this.options.repository.insertPart(part));
    } catch (err) {
      await this.removeObject(storageKey);
      throw err;
    }

    // A cancel or complete may have won the race while this part was streaming: then the part is
    // not wanted, and whoever ended the upload may already have cleaned up, so remove it here.
    // Reading it through load() also expires an upload whose hour ran out while the part streamed.
    const now = await this.load(id, INTERNAL);
    if (now.status !== "pending") {
      await this.discardPart(part);
      const why = now.status === "completing" ? "being completed" : now.status;
      throw conflict(`Upload '${id}' is ${why}; the part was not added`, "upload_id");
    }
    return part;
  }

  /** Assembles the named parts, in the order given, into a new file. */
  async complete(id: string, partIds: readonly string[], options: { md5?: string; owner?: Principal } = {}): Promise<UploadView> {
    const order = checkPartIds(partIds);
    const md5 = checkMd5(options.md5);
    const upload = await this.load(id, options.owner ?? null);
    this.access.checkWrite("update", UPLOAD_RESOURCE_TYPE, upload, options.owner, "upload");
    // Completing again is answered with the result, so a client that lost the first answer can retry.
    if (upload.status === "completed") return this.view(upload);
    assertPending(upload, "complete");

    const parts = new Map((await this.metadata(() => this.options.repository.listParts(id))).map((p) => [p.id, p]));
    const ordered = order.map((partId, i) => {
      const part = parts.get(partId);
      if (!part) throw invalidArgument("part_ids", `part_ids[${i}]: '${partId}' is not a part of upload '${id}'`);
      return part;
    });
    const total = ordered.reduce((sum, p) => sum + p.bytes, 0);
    if (total !== upload.bytes) {
      throw invalidArgument("part_ids", `The parts add up to ${total} bytes, but the upload was created with bytes=${upload.bytes}`);
    }

    if (!(await this.metadata(() => this.options.repository.transition(id, "pending", "completing")))) {
      assertPending(await this.load(id, INTERNAL), "complete");
      throw conflict(`Upload '${id}' changed while it was being completed; try again`, "upload_id");
    }
    let file: FileRecord;
    try {
      const request = {
        filename: upload.filename,
        purpose: upload.purpose,
        mimeType: upload.mimeType,
        expiresAfterSeconds: upload.fileExpiresAfterSeconds ?? undefined,
        sizeBytes: upload.bytes,
      };
      // The file belongs to the upload's owner, with the attributes recorded when the upload was created.
      const owner = upload.ownerPrincipal ? { principal: upload.ownerPrincipal, attributes: upload.accessAttributes ?? null } : null;
      // The parts hashed in order as they arrived (by this process) need not be read back.
      const hashedPrefix = this.hashChains.take(id, order);
      const options = { maxBytes: this.options.maxUploadBytes, md5, owner, hashedPrefix };
      // Joined inside the store when it can; otherwise, or when a part has gone missing (which
      // the streaming path names precisely), the parts stream through here.
      const composed = await this.options.files
        .uploadComposed(request, ordered.map((p) => ({ key: p.storageKey, bytes: p.bytes })), options)
        .catch((err: unknown) => {
          if (err instanceof FilesError && err.code === "not_found") return undefined;
          throw err;
        });
      file = composed ?? (await this.options.files.upload(request, this.concatenate(ordered), options));
    } catch (err) {
      // Nothing was committed: the upload is pending again and its parts are still there.
      await this.options.repository.transition(id, "completing", "pending").catch(() => {});
      throw err;
    }
    try {
      await this.metadata(() => this.options.repository.transition(id, "completing", "completed", file.id));
    } catch (err) {
      await this.options.files.delete(file.id, INTERNAL).catch(() => {});
      await this.options.repository.transition(id, "completing", "pending").catch(() => {});
      throw err;
    }
    await this.discardParts(id);
    return { upload: { ...upload, status: "completed", fileId: file.id }, file };
  }

  /** Cancels a pending upload and removes its parts; cancelling twice is not an error. */
  async cancel(id: string, owner: Principal = null): Promise<UploadView> {
    const upload = await this.load(id, owner);
    this.access.checkWrite("delete", UPLOAD_RESOURCE_TYPE, upload, owner, "upload");
    if (upload.status === "cancelled") return this.view(upload);
    assertPending(upload, "cancel");
    if (!(await this.metadata(() => this.options.repository.transition(id, "pending", "cancelled")))) {
      return this.cancel(id, owner);
    }
    this.hashChains.forget(id);
    await this.discardParts(id);
    return this.view({ ...upload, status: "cancelled" });
  }

  /**
   * Reads an upload, expiring it on the way when its hour is up (or when a dead process left it
   * completing, see uploadLapsed), so an expired upload never takes another part. (A background
   * sweep may expire it sooner; this makes expiry exact without one.)
   */
  private async load(id: string, owner: Principal | undefined): Promise<UploadRecord> {
    if (!isUploadId(id)) throw notFound(id, "upload_id", "upload");
    const upload = await this.metadata(() => this.options.repository.findUpload(id));
    if (!upload) throw notFound(id, "upload_id", "upload");
    // An upload the policy hides is "not found", exactly like a missing one.
    if (owner !== INTERNAL) this.access.checkRead(UPLOAD_RESOURCE_TYPE, upload, owner, "upload_id", "upload");
    if (uploadLapsed(upload, this.clock.now())) {
      if (await this.metadata(() => this.options.repository.transition(id, upload.status, "expired"))) {
        this.hashChains.forget(id);
        await this.discardParts(id);
      }
      return this.load(id, INTERNAL);
    }
    return upload;
  }

  private async view(upload: UploadRecord): Promise<UploadView> {
    let file: FileRecord | null = null;
    if (upload.fileId) {
      // The file may have been deleted or expired since: the upload then shows no file.
      // The caller may read the upload; the file made from it is shown with it.
      file = await this.options.files.get(upload.fileId, null).catch((err: unknown) => {
        if (err instanceof FilesError && err.code === "not_found") return null;
        throw err;
      });
    }
    return { upload: { ...upload, status: visibleStatus(upload.status) }, file };
  }

  private async *concatenate(parts: readonly UploadPartRecord[]): AsyncGenerator<Uint8Array> {
    for (const part of parts) {
      let body: AsyncIterable<Uint8Array>;
      try {
        body = await this.options.store.get(part.storageKey, undefined);
      } catch (err) {
        // A part lost from storage cannot be read back by retrying; sending it again can fix it.
        if (!(err instanceof FilesError && err.code === "not_found")) throw err;
        await this.options.repository.deletePart(part.id).catch(() => {});
        throw conflict(`Part '${part.id}' is no longer in storage; add it again and complete with its new id`, "part_ids");
      }
      yield* body;
    }
  }

  private async discardParts(uploadId: string): Promise<void> {
    const parts = await this.options.repository.listParts(uploadId).catch(() => []);
    if (parts.length === 0) return;
    const { store } = this.options;
    if (store.deleteMany) {
      // Objects first, as in discardPart: a row whose object could not be removed stays for the reaper.
      const failed = new Set(await store.deleteMany(parts.map((p) => p.storageKey)).catch(() => parts.map((p) => p.storageKey)));
      await this.options.repository.deleteParts(parts.filter((p) => !failed.has(p.storageKey)).map((p) => p.id)).catch(() => {});
      return;
    }
    for (let i = 0; i < parts.length; i += CLEANUP_CONCURRENCY) {
      await Promise.all(parts.slice(i, i + CLEANUP_CONCURRENCY).map((part) => this.discardPart(part)));
    }
  }

  /**
   * Object first: a row without its object would be a part that cannot be read. When the object
   * cannot be removed, the row stays: the upload has ended, so the reaper finds the part through
   * it and tries again, where deleting the row would leave the object unfindable.
   */
  private async discardPart(part: UploadPartRecord): Promise<void> {
    try {
      await this.options.store.delete(part.storageKey);
    } catch {
      return;
    }
    await this.options.repository.deletePart(part.id).catch(() => {});
  }

  private async removeObject(key: string): Promise<void> {
    try {
      await this.options.store.delete(key);
    } catch (err) {
      this.options.onOrphanedObject?.(key, err);
    }
  }

  private metadata<T>(operation: () => Promise<T>): Promise<T> {
    return orUnavailable("The metadata store", operation);
  }
}

function visibleStatus(status: UploadStatus): Exclude<UploadStatus, "completing"> {
  return status === "completing" ? "pending" : status;
}

function assertPending(upload: UploadRecord, action: string): void {
  if (upload.status === "pending") return;
  const why =
    upload.status === "completing"
      ? "is being completed by another request"
      : upload.status === "expired"
        ? `expired at ${new Date(upload.expiresAt * 1000).toISOString()}; create a new upload`
        : `is already ${upload.status}`;
  throw conflict(`Cannot ${action} upload '${upload.id}': it ${why}`, "upload_id");
}

function checkPartIds(partIds: readonly string[]): string[] {
  if (!Array.isArray(partIds) || partIds.length === 0) throw invalidArgument("part_ids", "part_ids must list at least one part");
  if (partIds.length > MAX_PARTS_PER_UPLOAD) {
    throw invalidArgument("part_ids", `part_ids may list at most ${MAX_PARTS_PER_UPLOAD} parts`);
  }
  const seen = new Set<string>();
  partIds.forEach((partId, i) => {
    if (typeof partId !== "string" || !isPartId(partId)) {
      throw invalidArgument("part_ids", `part_ids[${i}] is not a part id ('part_' and 32 hex characters)`);
    }
    if (seen.has(partId)) throw invalidArgument("part_ids", `part_ids[${i}]: '${partId}' is listed twice`);
    seen.add(partId);
  });
  return [...partIds];
}

function checkMd5(md5: string | undefined): string | undefined {
  if (md5 === undefined || md5 === "") return undefined;
  const lower = md5.toLowerCase();
  if (!MD5_HEX.test(lower)) throw invalidArgument("md5", "md5 must be 32 hex characters");
  return lower;
}
