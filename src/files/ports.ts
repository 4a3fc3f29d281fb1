import type { Attributes } from "./access-policy.js";
import type { Caller } from "./access-control.js";
import type { RowPredicate } from "./row-predicate.js";
import type { Purpose, UploadPurpose } from "./purposes.js";

/** A stored file's metadata, as the core sees it. Times are unix seconds. */
export interface FileRecord {
  id: string;
  filename: string;
  purpose: Purpose;
  bytes: number;
  createdAt: number;
  /** null: never expires. */
  expiresAt: number | null;
  mimeType: string;
  /** Lowercase hex; empty for rows written by tools that did not record one. */
  sha256: string;
  /** Where the bytes live in the object store. */
  storageKey: string;
  status: "processed";
  /** Who created it; null (or '' from Llama Stack) when authentication was off. */
  ownerPrincipal: string | null;
  /** The owner's attributes when it was created (Llama Stack's access_attributes); unset or null: none. */
  accessAttributes?: Attributes | null;
}

export type ListOrder = "asc" | "desc";

/** Where a file row says its bytes are (see FileRepository.listStorageKeys). */
export interface StorageKeyRow {
  id: string;
  storageKey: string;
}

/** Where an upload part row says its bytes are (see UploadRepository.listPartKeys). */
export interface PartKeyRow {
  id: string;
  uploadId: string;
  storageKey: string;
}

/**
 * Who is asking: the authenticated user (a principal and its attributes, or just a principal's
 * name), or null when authentication is off (one tenant, who sees every file). What it may reach
 * is the access policy's to say (see AccessControl).
 */
export type Principal = Caller;

/** Where a file sits in the list order, and whose it is (see FileRepository.position). */
export interface FilePosition {
  createdAt: number;
  id: string;
  ownerPrincipal: string | null;
  accessAttributes?: Attributes | null;
}

export interface ListQuery {
  /** Keyset cursor: the page starts strictly after this (createdAt, id) position in `order`. */
  after?: { createdAt: number; id: string };
  /** Rows to return; the repository returns at most this many. */
  limit: number;
  /** Only this principal's rows; undefined: everyone's. */
  owner?: string;
  /**
   * Only rows this predicate holds for (see RowPredicate); undefined: all. Repositories express every
   * node but `qualifiedMatches`, which the core never passes them (it filters those itself).
   */
  visible?: RowPredicate;
  order: ListOrder;
  purpose?: Purpose;
  /** Rows with expiresAt <= now are invisible. */
  now: number;
}

/** Metadata storage. Implementations: metadata/ (MikroORM on SQLite or PostgreSQL). */
export interface FileRepository {
  insert(record: FileRecord): Promise<void>;
  /** The row, unless it does not exist or has expired by `now`. */
  findById(id: string, now: number): Promise<FileRecord | undefined>;
  /** Ordered by (createdAt, id) in `order`. */
  list(query: ListQuery): Promise<FileRecord[]>;
  /**
   * Where a file sits in the list order, for `after` cursors. It is found even when the file has
   * expired or was deleted recently: a client that deletes files as it pages through them (a common
   * clean-up loop) asks for the page after a file that is already gone, and must not lose its place.
   */
  position(id: string): Promise<FilePosition | undefined>;
  /** True when a row was deleted; its list position is remembered for a while (see `position`). */
  delete(id: string, now: number): Promise<boolean>;
  /**
   * For the reaper: atomically claims up to `limit` rows that expired by `now` (oldest expiry first)
   * and that no claim holds any more, holding each until `claimUntil`. Concurrent callers, in this
   * process or another, never get the same row while its claim holds; once it lapses (the claimer
   * died) the row can be claimed again.
   */
  claimExpired(now: number, limit: number, claimUntil: number): Promise<FileRecord[]>;
  /**
   * For consistency checks: every row's storage key, expired rows included, ordered by id and
   * paged by keyset (ids strictly after `afterId`), at most `limit` per call.
   */
  listStorageKeys(afterId: string | undefined, limit: number): Promise<StorageKeyRow[]>;
  /** Throws when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PutOptions {
  /** The declared total size, when the client gave one: lets the store pick part sizes. */
  sizeHint?: number;
  contentType: string;
  /** Aborting stops the write and removes whatever was written. */
  signal?: AbortSignal;
}

export interface ByteRange {
  offset: number;
  /** At least 1: the core never asks a store for an empty range. */
  length: number;
}

/** Byte storage. Implementations: storage/ (S3, local filesystem, memory). */
export interface ObjectStore {
  /**
   * Streams `body` to `key`. Resolves with the size the store reports holding once every
   * byte is written. If `body` throws, or the signal aborts, nothing is left under `key`
   * and the error is rethrown.
   */
  put(key: string, body: AsyncIterable<Uint8Array>, options: PutOptions): Promise<{ bytes: number }>;
  /** Streams the object, or a range of it. Aborting the signal closes the stream. */
  get(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
  /** Removes the object; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes many objects in few requests (S3's DeleteObjects, up to 1,000 keys each); missing
   * objects are not an error. Resolves with the keys it could not remove. Optional: without it,
   * callers remove one key at a time.
   */
  deleteMany?(keys: readonly string[]): Promise<string[]>;
  /** The stored size, or undefined when there is no such object. */
  head(key: string): Promise<{ bytes: number } | undefined>;
  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
  /** Every complete object whose key starts with `prefix` ("" lists all), paging as the store needs. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /**
   * Writes that started and never finished (an S3 multipart upload, a local temp file), for clean-up
   * after a crash. A write in progress looks the same: judge by `lastModified`.
   */
  listIncomplete(prefix: string): AsyncIterable<IncompleteWrite>;
  /** Discards an unfinished write; one already gone is not an error. */
  abortIncomplete(write: IncompleteWrite): Promise<void>;
  /**
   * Optional: writes `key` as the concatenation of stored objects, in order, inside the store
   * (S3 copies them as the parts of a multipart upload), so no byte passes through this process.
   * Resolves with the size it holds, or undefined when it cannot join these sources (the caller
   * then streams them). Fails with not_found when a source is missing; any failure leaves nothing.
   */
  compose?(key: string, sources: readonly StoredSource[], options: { contentType: string }): Promise<{ bytes: number } | undefined>;
}

/** An object to compose from, with the size its row records. */
export interface StoredSource {
  key: string;
  bytes: number;
}

export interface StoredObject {
  key: string;
  bytes: number;
  /** Unix seconds. */
  lastModified: number;
}

export interface IncompleteWrite {
  /**
   * The key being written; null when the store does not record it (the local store's temp files,
   * which live in its private directory, outside every key, and are listed for any prefix).
   */
  key: string | null;
  /** The store's handle for the write (an S3 upload id, a temp file name). */
  id: string;
  /** Unix seconds of the last sign of progress (the latest part, or the write's start). */
  lastModified: number;
}

export interface Clock {
  /** Unix seconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Math.floor(Date.now() / 1000) };

/**
 * OpenAI's Upload states, plus "completing": the parts are being assembled. Clients see it
 * as "pending"; it exists so that two completes, or a complete and a cancel, cannot both win.
 */
export type UploadStatus = "pending" | "completing" | "completed" | "cancelled" | "expired";

/**
 * A complete can only start before the upload expires, and assembling even the largest upload
 * takes minutes. An upload still "completing" this long after its expiry was left by a process
 * that died mid-complete: it is expired like a pending one, so its parts are removed and a retry
 * gets a clear answer instead of "being completed" for ever.
 */
export const STALE_COMPLETING_SECONDS = 3600;

/** Whether an upload has lapsed: pending past its expiry, or stuck completing (see STALE_COMPLETING_SECONDS). */
export function uploadLapsed(upload: Pick<UploadRecord, "status" | "expiresAt">, now: number): boolean {
  if (upload.status === "pending") return now >= upload.expiresAt;
  return upload.status === "completing" && now >= upload.expiresAt + STALE_COMPLETING_SECONDS;
}

/** A file being sent in parts (OpenAI's Uploads API). Times are unix seconds. */
export interface UploadRecord {
  id: string;
  filename: string;
  purpose: UploadPurpose;
  /** The total size the client declared; the parts must add up to it. */
  bytes: number;
  mimeType: string;
  createdAt: number;
  /** When the upload itself lapses (one hour after creation, like OpenAI's). */
  expiresAt: number;
  /** The expiry the finished file gets, in seconds after its creation; null means the purpose's default. */
  fileExpiresAfterSeconds: number | null;
  status: UploadStatus;
  /** Set once completed. */
  fileId: string | null;
  ownerPrincipal: string | null;
  /** The owner's attributes when it was created; the file it becomes gets them too. */
  accessAttributes?: Attributes | null;
}

/** One stored part. Each part is its own object until the upload is completed. */
export interface UploadPartRecord {
  id: string;
  uploadId: string;
  bytes: number;
  sha256: string;
  storageKey: string;
  createdAt: number;
}

/**
 * Upload state lives in the metadata database, not in a process, so any replica can take any part.
 * Implementations: metadata/ (MikroORM).
 */
export interface UploadRepository {
  insertUpload(upload: UploadRecord): Promise<void>;
  findUpload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Compare-and-set on the status: true when this call moved the upload from `from` to `to`
   * (and recorded `fileId`, when given); false when its status was no longer `from`.
   */
  transition(id: string, from: UploadStatus, to: UploadStatus, fileId?: string): Promise<boolean>;
  insertPart(part: UploadPartRecord): Promise<void>;
  listParts(uploadId: string): Promise<UploadPartRecord[]>;
  /** How many parts the upload holds (each new part checks the limit; listParts would read them all). */
  countParts(uploadId: string): Promise<number>;
  deletePart(partId: string): Promise<void>;
  /** Removes these part rows (an ended upload's, once their objects are gone) in few statements. */
  deleteParts(partIds: readonly string[]): Promise<void>;
  /**
   * For the reaper: atomically claims up to `limit` uploads with work left, holding each until
   * `claimUntil` (see FileRepository.claimExpired): pending uploads whose expiry is <= `now`,
   * completing uploads whose expiry is <= `now - STALE_COMPLETING_SECONDS` (see uploadLapsed), and
   * cancelled, expired or completed uploads that still have parts (left behind by a crash).
   */
  claimUploadsToReap(now: number, limit: number, claimUntil: number): Promise<UploadRecord[]>;
  /** For consistency checks: every part's storage key, ordered by part id and keyset-paged like FileRepository.listStorageKeys. */
  listPartKeys(afterId: string | undefined, limit: number): Promise<PartKeyRow[]>;
}
