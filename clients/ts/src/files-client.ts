import { ConnectError, createClient, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { ExpiresAfterAnchor, FilePurpose, FilesService, ListOrder, type AddUploadPartResponse, type DownloadFileResponse, type File } from "../../../gen/ts/files/v1/files_pb.js";
import { IntegrityError, toFilesError } from "./errors.js";
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from "./retry.js";
import { fixedPieces, knownSize, pieces, type UploadSource } from "./source.js";

const MiB = 1024 * 1024;

/** An incremental SHA-256 (node:crypto's in Node); without one, nothing is hashed or verified. */
export interface Sha256 {
  update(bytes: Uint8Array): void;
  /** Lowercase hex. */
  digest(): string;
}

export interface Progress {
  /** Bytes sent (uploads: stored by the service, for parts) or received and written (downloads). */
  bytes: number;
  /** The total, when known. */
  total: number | undefined;
}

export interface FilesClientOptions {
  /** Sources of at least this many bytes (size known) go through the Uploads API in parallel parts. Default 64 MiB. */
  partThreshold?: number;
  /**
   * Default 6 MiB: at least S3's 5 MiB minimum, so the service joins the parts inside S3 on
   * complete, and under the service's default 8 MiB message limit (a part is one message).
   */
  partSize?: number;
  /** Parts in flight at once. Default 4. */
  partConcurrency?: number;
  /** Retries of parts and of broken download windows. */
  retry?: Partial<RetryPolicy>;
  /** Deadline of each unary call, in ms (default 30 s). Streams have none: they last as long as the bytes. */
  timeoutMs?: number;
  /** False where requests cannot stream (browsers): every upload then goes in parts. Default true. */
  streamingUploads?: boolean;
  /** Makes a SHA-256 for upload checks and download verification. */
  sha256?: () => Sha256;
  /**
   * DownloadFile by another road than the generated client (node.ts: straight on node:http2),
   * and the bytes per call it can take at once (default: DOWNLOAD_WINDOW_BYTES per call).
   */
  downloadStream?: (call: { fileId: string; offset: bigint; length?: bigint }, signal?: AbortSignal) => AsyncIterable<DownloadFileResponse>;
  downloadWindowBytes?: number;
  /** AddUploadPart by another road than the generated client (node.ts: straight on node:http2, the part written as it is). */
  addUploadPart?: (request: { uploadId: string; data: Uint8Array }, options: CallOptions) => Promise<AddUploadPartResponse>;
}

export type Purpose = FilePurpose | "assistants" | "batch" | "fine-tune" | "vision" | "user_data" | "evals";

const PURPOSES: Record<string, FilePurpose> = {
  assistants: FilePurpose.ASSISTANTS,
  batch: FilePurpose.BATCH,
  "fine-tune": FilePurpose.FINE_TUNE,
  vision: FilePurpose.VISION,
  user_data: FilePurpose.USER_DATA,
  evals: FilePurpose.EVALS,
};

export function toPurpose(purpose: Purpose): FilePurpose {
  if (typeof purpose === "number") return purpose;
  const value = PURPOSES[purpose];
  if (value === undefined) throw new TypeError(`unknown purpose '${purpose}' (one of ${Object.keys(PURPOSES).join(", ")})`);
  return value;
}

export interface UploadOptions {
  purpose: Purpose;
  filename: string;
  /** Default: left to the service (application/octet-stream). */
  mimeType?: string;
  /** Seconds after creation when the file expires (3600 to 2592000). */
  expiresAfterSeconds?: number;
  /** The size of an iterable source, if known: declared to the service, and it lets a large one go in parts. */
  size?: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface DownloadOptions {
  /** Called once with the file's metadata, before its first byte is written (e.g. to choose where to write). */
  onFile?: (file: File) => void | Promise<void>;
  /** First byte (default 0). */
  offset?: number;
  /** Bytes to read (default: to the end). */
  length?: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface ListOptions {
  purpose?: Purpose;
  order?: "asc" | "desc";
  /** Files per page (1 to 10000; the service's default 10000). */
  pageSize?: number;
  signal?: AbortSignal;
}

/** Bytes per UploadFile message: well under every message limit, large enough to be cheap. */
const CHUNK_BYTES = MiB;
/**
 * Bytes per DownloadFile call through connect-es, which keeps a server stream's messages reachable
 * until the call ends: one call per window bounds memory. A broken call resumes from its offset.
 */
export const DOWNLOAD_WINDOW_BYTES = 32 * MiB;

/**
 * The Files service for TypeScript, on any Connect transport (connect-node's gRPC or connect-web's
 * Connect): streaming and parallel-part uploads, resumable verified downloads, paged listing,
 * typed errors. See node.ts and web.ts for the ready-made connections.
 */
export class FilesClient {
  /** The generated client, for calls this class does not wrap. */
  readonly rpc: Client<typeof FilesService>;
  private readonly partThreshold: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly streamingUploads: boolean;
  private readonly sha256: (() => Sha256) | undefined;
  private readonly downloadStream: NonNullable<FilesClientOptions["downloadStream"]>;
  private readonly downloadWindowBytes: number;
  private readonly addUploadPart: NonNullable<FilesClientOptions["addUploadPart"]>;

  constructor(
    transport: Transport,
    options: FilesClientOptions = {},
    private readonly onClose?: () => void,
  ) {
    this.rpc = createClient(FilesService, transport);
    this.partThreshold = options.partThreshold ?? 64 * MiB;
    this.partSize = options.partSize ?? 6 * MiB;
    this.partConcurrency = options.partConcurrency ?? 4;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.streamingUploads = options.streamingUploads ?? true;
    this.sha256 = options.sha256;
    this.downloadStream = options.downloadStream ?? ((call, signal) => this.rpc.downloadFile(call, { signal }));
    this.downloadWindowBytes = options.downloadWindowBytes ?? DOWNLOAD_WINDOW_BYTES;
    this.addUploadPart = options.addUploadPart ?? ((request, callOptions) => this.rpc.addUploadPart(request, callOptions));
    if (!(this.partSize >= 1 && this.partConcurrency >= 1 && this.partThreshold >= 0)) throw new RangeError("partSize and partConcurrency must be at least 1");
  }

  private unary(signal?: AbortSignal): CallOptions {
    return { timeoutMs: this.timeoutMs, signal };
  }

  /** Uploads `source`: one UploadFile stream, or the Uploads API in parallel parts when it is large. */
  async upload(source: UploadSource, options: UploadOptions): Promise<File> {
    const size = knownSize(source) ?? options.size;
    const parts = size !== undefined && (!this.streamingUploads || size >= this.partThreshold);
    if (!parts && !this.streamingUploads) throw new TypeError("this transport cannot stream an upload of unknown size; pass `size`");
    try {
      return parts ? await this.uploadInParts(source, size!, options) : await this.uploadStream(source, size, options);
    } catch (err) {
      throw fromCall(err);
    }
  }

  private async uploadStream(source: UploadSource, size: number | undefined, options: UploadOptions): Promise<File> {
    const hash = this.sha256?.();
    // Bytes held in memory are hashed first, so the service checks them on arrival.
    let declared: string | undefined;
    if (hash && source instanceof Uint8Array) {
      hash.update(source);
      declared = hash.digest();
    }
    let sent = 0;
    const onProgress = options.onProgress;
    const metadata = {
      filename: options.filename,
      purpose: toPurpose(options.purpose),
      mimeType: options.mimeType ?? "",
      sizeBytes: size === undefined ? undefined : BigInt(size),
      sha256: declared,
      expiresAfter: expiresAfter(options.expiresAfterSeconds),
    };
    async function* messages() {
      yield { payload: { case: "metadata" as const, value: metadata } };
      for await (const chunk of pieces(source, CHUNK_BYTES)) {
        if (!declared) hash?.update(chunk);
        yield { payload: { case: "chunk" as const, value: chunk } };
        sent += chunk.byteLength;
        onProgress?.({ bytes: sent, total: size });
      }
    }
    const res = await this.rpc.uploadFile(messages(), { signal: options.signal });
    if (!res.file) throw new Error("the service answered UploadFile without a file");
    if (hash && !declared) await this.checkStored(res.file, hash.digest());
    return res.file;
  }

  /** The service hashed what it received; this checks it received what was read here, and removes it if not. */
  private async checkStored(file: File, sent: string): Promise<void> {
    if (file.sha256 === "" || file.sha256.toLowerCase() === sent) return;
    await this.rpc.deleteFile({ fileId: file.id }, this.unary()).catch(() => undefined);
    throw new IntegrityError(`SHA-256 mismatch after upload: sent ${sent}, the service stored ${file.sha256}; file ${file.id} was deleted`);
  }

  private async uploadInParts(source: UploadSource, size: number, options: UploadOptions): Promise<File> {
    const { upload } = await this.rpc.createUpload(
      {
        filename: options.filename,
        purpose: toPurpose(options.purpose),
        bytes: BigInt(size),
        mimeType: options.mimeType ?? "",
        expiresAfter: expiresAfter(options.expiresAfterSeconds),
      },
      this.unary(options.signal),
    );
    if (!upload) throw new Error("the service answered CreateUpload without an upload");
    // Stops the other parts as soon as one fails for good, or the caller aborts.
    const stop = new AbortController();
    const onAbort = () => stop.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const hash = this.sha256?.();
      const partIds: string[] = [];
      // Part buffers are reused once their part is stored: a few, not one per part left to the collector.
      const spare: Uint8Array[] = [];
      const ours = new WeakSet<ArrayBufferLike>();
      const allocate = () => {
        const buffer = spare.pop() ?? new Uint8Array(this.partSize);
        ours.add(buffer.buffer);
        return buffer;
      };
      const reader = fixedPieces(source, this.partSize, allocate)[Symbol.asyncIterator]();
      let index = 0;
      let sent = 0;
      let read = 0;
      // One reader, in order (so the hash sees the bytes in order); a part is read only when a worker is free.
      let reading = Promise.resolve();
      const nextPart = () => {
        const turn = reading.then(async () => {
          const r = await reader.next();
          if (r.done) return undefined;
          hash?.update(r.value);
          read += r.value.byteLength;
          return { index: index++, data: r.value };
        });
        reading = turn.then(() => undefined, () => undefined);
        return turn;
      };
      const worker = async () => {
        for (let part = await nextPart(); part && !stop.signal.aborted; part = await nextPart()) {
          const data = part.data;
          const res = await withRetry(this.retry, () => this.addUploadPart({ uploadId: upload.id, data }, this.unary(stop.signal)), stop.signal);
          if (!res.part) throw new Error("the service answered AddUploadPart without a part");
          partIds[part.index] = res.part.id;
          sent += data.byteLength;
          // The service has answered, so every byte of the part was sent: its buffer can take another.
          if (ours.has(data.buffer) && data.byteLength === this.partSize) spare.push(data);
          options.onProgress?.({ bytes: sent, total: size });
        }
      };
      const count = Math.max(1, Math.ceil(size / this.partSize));
      const workers = Array.from({ length: Math.min(this.partConcurrency, count) }, () =>
        worker().catch((err: unknown) => {
          stop.abort(err);
          throw err;
        }),
      );
      const settled = await Promise.allSettled(workers);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw options.signal?.aborted ? options.signal.reason : failed.reason;
      options.signal?.throwIfAborted();
      if (read !== size) throw new RangeError(`the source held ${read} bytes, not the ${size} declared`);
      // Assembling parts of a large file takes a while: no unary deadline here.
      const done = await this.rpc.completeUpload({ uploadId: upload.id, partIds }, { signal: options.signal });
      const file = done.upload?.file;
      if (!file) throw new Error("the service completed the upload without a file");
      if (hash) await this.checkStored(file, hash.digest());
      return file;
    } catch (err) {
      // Best effort: a cancel that fails leaves the parts to the upload's own expiry (one hour).
      await this.rpc.cancelUpload({ uploadId: upload.id }, this.unary()).catch(() => undefined);
      throw err;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Streams a file (or a range of it) into `write`, in order, and resolves with its metadata.
   * A broken stream resumes from the bytes already written; a whole-file download is checked
   * against the SHA-256 the service recorded before it resolves (IntegrityError otherwise).
   */
  async download(fileId: string, write: (chunk: Uint8Array) => void | Promise<void>, options: DownloadOptions = {}): Promise<File> {
    try {
      return await this.downloadWindows(fileId, write, options);
    } catch (err) {
      throw fromCall(err);
    }
  }

  private async downloadWindows(fileId: string, write: (chunk: Uint8Array) => void | Promise<void>, options: DownloadOptions): Promise<File> {
    const offset = options.offset ?? 0;
    const whole = offset === 0 && options.length === undefined;
    const hash = whole ? this.sha256?.() : undefined;
    let file: File | undefined;
    let end = Infinity; // exclusive, once the first answer names the size
    let position = offset;
    let failures = 0;
    while (file === undefined || position < end) {
      const want = Math.min(this.downloadWindowBytes, options.length === undefined ? Infinity : offset + options.length - position, end - position);
      const before = position;
      const call = { fileId, offset: BigInt(position), ...(Number.isFinite(want) && { length: BigInt(want) }) };
      try {
        for await (const message of this.downloadStream(call, options.signal)) {
          if (message.payload.case === "file") {
            const answer = message.payload.value;
            if (file === undefined) {
              file = answer;
              const size = Number(file.bytes);
              end = Math.min(options.length === undefined ? size : offset + options.length, size);
              await options.onFile?.(file);
            } else if (answer.sha256 !== file.sha256 || answer.bytes !== file.bytes) {
              throw new IntegrityError(`${fileId} changed while it was being downloaded`);
            }
          } else if (message.payload.case === "chunk") {
            const chunk = message.payload.value;
            if (position + chunk.byteLength > end) throw new IntegrityError(`the service sent more than the ${end - offset} bytes asked for`);
            hash?.update(chunk);
            await write(chunk);
            position += chunk.byteLength;
            options.onProgress?.({ bytes: position - offset, total: end === Infinity ? undefined : end - offset });
          }
        }
        if (file === undefined) throw new Error("the service answered DownloadFile without the file's metadata");
        if (position === before && position < end) throw new Error(`the download stopped at byte ${position} of ${end}`);
      } catch (err) {
        // What the writer, onFile or the checks threw is final; only a failed call may resume.
        if (!(err instanceof ConnectError)) throw err;
        const e = toFilesError(err);
        // Progress resets the count: a long download may break more than `attempts` times in all.
        failures = position > before ? 1 : failures + 1;
        if (options.signal?.aborted || !isResumable(e) || failures >= this.retry.attempts) throw e;
        continue;
      }
      failures = 0;
    }
    if (hash && file.sha256 !== "") {
      const got = hash.digest();
      if (got !== file.sha256.toLowerCase()) throw new IntegrityError(`SHA-256 mismatch for ${file.id}: expected ${file.sha256}, received ${got}`);
    }
    return file;
  }

  async get(fileId: string, signal?: AbortSignal): Promise<File> {
    try {
      const res = await this.rpc.getFile({ fileId }, this.unary(signal));
      if (!res.file) throw new Error("the service answered GetFile without a file");
      return res.file;
    } catch (err) {
      throw toFilesError(err);
    }
  }

  async delete(fileId: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.rpc.deleteFile({ fileId }, this.unary(signal));
    } catch (err) {
      throw toFilesError(err);
    }
  }

  /** Every file, page after page (`after` the last id of each), newest first unless order is "asc". */
  async *list(options: ListOptions = {}): AsyncGenerator<File> {
    let after = "";
    for (;;) {
      let page;
      try {
        page = await this.rpc.listFiles(
          {
            after,
            limit: options.pageSize,
            order: options.order === "asc" ? ListOrder.ASC : options.order === "desc" ? ListOrder.DESC : ListOrder.UNSPECIFIED,
            purpose: options.purpose === undefined ? FilePurpose.UNSPECIFIED : toPurpose(options.purpose),
          },
          this.unary(options.signal),
        );
      } catch (err) {
        throw toFilesError(err);
      }
      yield* page.data;
      const last = page.lastId ?? page.data.at(-1)?.id;
      if (!page.hasMore || !last) return;
      after = last;
    }
  }

  /** Ends the connection (Node); pending calls fail. */
  close(): void {
    this.onClose?.();
  }
}

/**
 * A failed call as a FilesError; anything else (the source's or the writer's own errors, a
 * FilesError already made) goes to the caller unchanged.
 */
function fromCall(err: unknown): unknown {
  return err instanceof ConnectError ? toFilesError(err) : err;
}

function expiresAfter(seconds: number | undefined) {
  return seconds === undefined ? undefined : { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: BigInt(seconds) };
}

/** A broken download resumes when the network or the service failed, not when the request was refused. */
function isResumable(e: ReturnType<typeof toFilesError>): boolean {
  // A reset connection surfaces as any of these, depending on where the stream broke; the
  // caller's own abort is told apart by its signal before this is asked.
  return ["Unavailable", "Internal", "Unknown", "Aborted", "Canceled"].includes(e.codeName);
}
