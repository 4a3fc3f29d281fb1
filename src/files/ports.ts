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
  /** Reserved for authentication; null until then. */
  ownerPrincipal: string | null;
}

export type ListOrder = "asc" | "desc";

export interface ListQuery {
  /** Keyset cursor: the page starts strictly after this (createdAt, id) position in `order`. */
  after?: { createdAt: number; id: string };
  /** Rows to return; the repository returns at most this many. */
  limit: number;
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
  position(id: string): Promise<{ createdAt: number; id: string } | undefined>;
  /** True when a row was deleted; its list position is remembered for a while (see `position`). */
  delete(id: string, now: number): Promise<boolean>;
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
  /** The stored size, or undefined when there is no such object. */
  head(key: string): Promise<{ bytes: number } | undefined>;
  /** Throws when the store cannot be reached. */
  ping(): Promise<void>;
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
  deletePart(partId: string): Promise<void>;
}
