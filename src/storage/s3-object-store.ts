import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import { unavailable, UnsupportedByStore } from "../files/errors.js";
import type { ByteRange, IncompleteWrite, ObjectStore, PutOptions, StoredObject, StoredSource } from "../files/ports.js";
import { abortReason, destroyOnAbort, FirstError, guardBody } from "./abortable-body.js";
import { PartBuffers } from "./part-buffers.js";
import { MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, planPartSize } from "./part-size.js";
import { writeInParts, type PartSink, type SentPart } from "./part-writer.js";
import { checkBucket } from "./bucket.js";
import { FALLBACKS, S3Capabilities } from "./s3-capabilities.js";
import { fromS3Error, isS3NotFound } from "./s3-errors.js";

/** DeleteObjects takes at most 1,000 keys a request. */
const DELETE_BATCH = 1000;

export interface S3ObjectStoreOptions {
  client: S3Client;
  bucket: string;
  /** Preferred multipart part size; raised for large declared sizes (see planPartSize). Default 8 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded at once per put. Memory per put is about (this + 1) × part size. Default 4. */
  partConcurrency?: number;
  serverSideEncryption?: "AES256" | "aws:kms";
  /** Only with "aws:kms"; unset means the bucket's or account's default KMS key. */
  sseKmsKeyId?: string;
  /** What the store was found not to implement; shared with the startup bucket check. */
  capabilities?: S3Capabilities;
  /** A failed or cancelled put whose multipart upload could not be aborted (the put fails with its own error). */
  onAbortFailed?: (event: AbortFailure) => void;
}

export interface AbortFailure {
  key: string;
  uploadId: string;
  error: unknown;
  /** The store does not implement AbortMultipartUpload: the upload is left for its lifecycle rules. */
  leftForLifecycle: boolean;
}

const MiB = 1024 * 1024;

/**
 * Objects in one S3 bucket. Puts stream through `writeInParts`: one PutObject when the body fits
 * in a part, otherwise a multipart upload with `partConcurrency` parts in flight.
 */
export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly partSizeBytes: number;
  private readonly partConcurrency: number;
  private readonly sse: Pick<PutObjectCommandInput, "ServerSideEncryption" | "SSEKMSKeyId">;
  private readonly buffers: PartBuffers;
  private readonly capabilities: S3Capabilities;
  private readonly onAbortFailed: ((event: AbortFailure) => void) | undefined;

  constructor(options: S3ObjectStoreOptions) {
    this.capabilities = options.capabilities ?? new S3Capabilities();
    this.onAbortFailed = options.onAbortFailed;
    this.client = options.client;
    this.bucket = options.bucket;
    this.partSizeBytes = options.partSizeBytes ?? 8 * MiB;
    this.partConcurrency = options.partConcurrency ?? 4;
    if (!Number.isInteger(this.partConcurrency) || this.partConcurrency < 1) {
      throw new RangeError(`partConcurrency must be a positive integer, got ${this.partConcurrency}`);
    }
    // Fail at startup, not on the first upload. Spare buffers: enough for one put's parts in flight.
    this.buffers = new PartBuffers(planPartSize(this.partSizeBytes), this.partConcurrency + 1);
    if (options.sseKmsKeyId && options.serverSideEncryption !== "aws:kms") {
      throw new Error('sseKmsKeyId needs serverSideEncryption "aws:kms"');
    }
    this.sse = {
      ...(options.serverSideEncryption && { ServerSideEncryption: options.serverSideEncryption }),
      ...(options.sseKmsKeyId && { SSEKMSKeyId: options.sseKmsKeyId }),
    };
  }

  async put(key: string, body: AsyncIterable<Uint8Array>, options: PutOptions): Promise<{ bytes: number }> {
    const { signal } = options;
    if (signal?.aborted) throw abortReason(signal);
    const failure = new FirstError();
    const partSize = planPartSize(this.partSizeBytes, options.sizeHint);
    // The signal cancels only part uploads (a part cut short is never stored, and the multipart
    // upload is aborted right after). A PutObject or a complete is not cancelled mid-flight: it
    // could still land later, so it is let finish and its object deleted.
    let written: { bytes: number; multipart: boolean };
    try {
      written = await writeInParts(
        guardBody(body, signal, failure),
        {
          partSize,
          concurrency: this.partConcurrency,
          buffers: this.buffers,
          signal,
          onAbortFailed: (uploadId, error) => this.abortFailed(key, uploadId, error),
        },
        this.sinkFor(key, options.contentType),
      );
    } catch (err) {
      // A body error means nothing was completed (the multipart upload, if any, is aborted).
      if (failure.has) throw failure.error;
      if (signal?.aborted) {
        await this.deleteQuietly(key);
        throw abortReason(signal);
      }
      // A failed complete or PUT may still have landed (a timeout after S3 acted): do not leave it.
      await this.deleteQuietly(key);
      throw unavailable("object storage", err);
    }
    if (signal?.aborted) {
      // The last part was already sent when the signal fired, and the object exists: remove it.
      await this.deleteQuietly(key);
      throw abortReason(signal);
    }
    // One PutObject of a buffer with its Content-Length: S3 answers 200 only once it holds exactly
    // those bytes, so asking again would only add a round trip per file.
    if (!written.multipart) return { bytes: written.bytes };
    try {
      // A multipart upload is assembled by S3 from many requests: report what it holds, not what
      // we sent, so the core can compare it with the bytes it counted.
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (head.ContentLength === undefined) throw new Error("HeadObject returned no Content-Length");
      return { bytes: head.ContentLength };
    } catch (err) {
      await this.deleteQuietly(key);
      throw unavailable("object storage", err);
    }
  }

  /**
   * Joins stored objects into `key` inside S3: a multipart upload whose parts are UploadPartCopy
   * requests, so the bytes never leave S3. S3 takes that only when every source but the last is
   * 5 MiB to 5 GiB and there are at most 10,000; for anything else this answers undefined, and
   * also for a total within one part, which is cheaper to write again as one PutObject.
   */
  async compose(key: string, sources: readonly StoredSource[], options: { contentType: string }): Promise<{ bytes: number } | undefined> {
    const last = sources.length - 1;
    if (sources.length === 0 || sources.length > MAX_PARTS) return undefined;
    if (sources.reduce((sum, s) => sum + s.bytes, 0) <= this.partSizeBytes) return undefined;
    if (sources.some((s, i) => s.bytes > MAX_PART_SIZE || (i < last && s.bytes < MIN_PART_SIZE))) return undefined;
    // A store without UploadPartCopy: the caller streams the sources through instead.
    if (!this.capabilities.has("UploadPartCopy")) return undefined;
    // No checksum algorithm on the upload: copies send no bytes to check, and a part copy need not
    // report a checksum that the complete would then have to repeat.
    const sink = this.sinkFor(key, options.contentType, { partChecksums: false });
    let uploadId: string | undefined;
    try {
      uploadId = await sink.begin();
      const id = uploadId;
      const parts = await mapInOrder(sources, COPY_CONCURRENCY, async (source, i) => {
        const out = await this.client.send(
          new UploadPartCopyCommand({ Bucket: this.bucket, Key: key, UploadId: id, PartNumber: i + 1, CopySource: copySource(this.bucket, source.key) }),
        );
        const result = out.CopyPartResult;
        if (!result?.ETag) throw new Error(`UploadPartCopy ${i + 1} returned no ETag`);
        return { PartNumber: i + 1, ...partChecksums(result), ETag: result.ETag };
      });
      await sink.complete(id, parts);
    } catch (err) {
      if (uploadId !== undefined) {
        const id = uploadId;
        await sink.abort(id).catch((error: unknown) => this.abortFailed(key, id, error));
      }
      await this.deleteQuietly(key);
      if (this.capabilities.lacks("UploadPartCopy", err)) return undefined;
      // A missing source is the caller's to explain (which part is gone); anything else is S3 failing.
      if (isS3NotFound(err)) throw fromS3Error(err);
      throw unavailable("object storage", err);
    }
    const stored = await this.head(key).catch(async (err: unknown) => {
      await this.deleteQuietly(key);
      throw err;
    });
    if (!stored) throw unavailable("object storage", new Error(`${key} is missing right after it was composed`));
    return stored;
  }

  /** The S3 calls of one put. */
  private sinkFor(key: string, contentType: string, options: { partChecksums: boolean } = { partChecksums: true }): PartSink {
    const { client, bucket, sse, capabilities } = this;
    const target = { Bucket: bucket, Key: key };
    return {
      async putWhole(body) {
        await client.send(new PutObjectCommand({ ...target, Body: body, ContentLength: body.byteLength, ContentType: contentType, ...sse }));
      },
      async begin() {
        // As lib-storage does: when the client adds checksums to parts, the upload must be
        // created with that algorithm, and the complete must repeat each part's checksum.
        const checksums = options.partChecksums && (await client.config.requestChecksumCalculation()) === "WHEN_SUPPORTED";
        const out = await client.send(
          new CreateMultipartUploadCommand({ ...target, ContentType: contentType, ...sse, ...(checksums && { ChecksumAlgorithm: "CRC32" }) }),
        );
        if (!out.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
        return out.UploadId;
      },
      async sendPart(uploadId, partNumber, body, signal) {
        const out = await client.send(
          new UploadPartCommand({ ...target, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.byteLength }),
          { abortSignal: signal },
        );
        if (!out.ETag) throw new Error(`UploadPart ${partNumber} returned no ETag`);
        return { ...partChecksums(out), ETag: out.ETag };
      },
      async complete(uploadId, parts) {
        await client.send(new CompleteMultipartUploadCommand({ ...target, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
      },
      async abort(uploadId) {
        if (!capabilities.has("AbortMultipartUpload")) throw new UnsupportedByStore(FALLBACKS.AbortMultipartUpload);
        try {
          await client.send(new AbortMultipartUploadCommand({ ...target, UploadId: uploadId }));
        } catch (err) {
          if (capabilities.lacks("AbortMultipartUpload", err)) throw new UnsupportedByStore(FALLBACKS.AbortMultipartUpload, { cause: err });
          throw err;
        }
      },
    };
  }

  async get(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    if (signal?.aborted) throw abortReason(signal);
    let body: unknown;
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          ...(range && { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
        }),
        { abortSignal: signal },
      );
      body = out.Body;
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      throw fromS3Error(err);
    }
    if (body === undefined) return Readable.from([]);
    // In Node the SDK's body is the http.IncomingMessage itself (with helper methods mixed in).
    const stream = body as Readable;
    destroyOnAbort(stream, signal);
    return stream;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (!isS3NotFound(err)) throw unavailable("object storage", err);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<string[]> {
    const failed: string[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      if (this.capabilities.has("DeleteObjects")) {
        try {
          const out = await this.client.send(
            new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          );
          for (const e of out.Errors ?? []) if (e.Key !== undefined && e.Code !== "NoSuchKey") failed.push(e.Key);
          continue;
        } catch (err) {
          // A store without it (501) is noted once; any other refusal of the batch (a store that
          // wants Content-MD5, say) falls back for this batch only: one key at a time.
          this.capabilities.lacks("DeleteObjects", err);
        }
      }
      for (const key of batch) await this.delete(key).catch(() => failed.push(key));
    }
    return failed;
  }

  async head(key: string): Promise<{ bytes: number } | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { bytes: out.ContentLength ?? 0 };
    } catch (err) {
      if (isS3NotFound(err)) return undefined;
      throw unavailable("object storage", err);
    }
  }

  async ping(): Promise<void> {
    try {
      await checkBucket(this.client, this.bucket, this.capabilities);
    } catch (err) {
      throw unavailable("object storage", err);
    }
  }

  /**
   * ListObjectsV2, page by page; `pageSize` (S3's MaxKeys, at most 1000) is for tests of the paging.
   * Keys ending in "/" are left out: this service never writes one, and stores on a filesystem
   * (s3proxy's filesystem provider, a console's "folders") list each directory as such a key.
   */
  async *list(prefix: string, options: { pageSize?: number } = {}): AsyncGenerator<StoredObject> {
    let token: string | undefined;
    do {
      const page = await this.client
        .send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix || undefined, ContinuationToken: token, MaxKeys: options.pageSize }))
        .catch(storageUnavailable);
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || o.Key.endsWith("/")) continue;
        yield { key: o.Key, bytes: o.Size ?? 0, lastModified: unixSeconds(o.LastModified) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Multipart uploads never completed nor aborted (a put aborts its own on failure, so these
   * are left by a process that died). `lastModified` is that of the newest part, else the start.
   * A part is never older than its upload's start on AWS; s3proxy reports the time of the listing
   * as `Initiated`, which would make every abandoned upload look fresh, so the parts come first.
   */
  async *listIncomplete(prefix: string, options: { pageSize?: number } = {}): AsyncGenerator<IncompleteWrite> {
    const unsupported = (cause?: unknown) => new UnsupportedByStore(FALLBACKS.ListMultipartUploads, { cause });
    if (!this.capabilities.has("ListMultipartUploads")) throw unsupported();
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client
        .send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix || undefined,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
            MaxUploads: options.pageSize,
          }),
        )
        .catch((err: unknown) => {
          if (this.capabilities.lacks("ListMultipartUploads", err)) throw unsupported(err);
          return storageUnavailable(err);
        });
      for (const u of page.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        const newestPart = await this.newestPart(u.Key, u.UploadId);
        yield { key: u.Key, id: u.UploadId, lastModified: newestPart > 0 ? newestPart : unixSeconds(u.Initiated) };
      }
      if (!page.IsTruncated || (!page.NextKeyMarker && !page.NextUploadIdMarker)) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  async abortIncomplete(write: IncompleteWrite): Promise<void> {
    if (write.key === null) throw new Error("an S3 multipart upload always has a key");
    if (!this.capabilities.has("AbortMultipartUpload")) throw new UnsupportedByStore(FALLBACKS.AbortMultipartUpload);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: write.key, UploadId: write.id }));
    } catch (err) {
      if (this.capabilities.lacks("AbortMultipartUpload", err)) throw new UnsupportedByStore(FALLBACKS.AbortMultipartUpload, { cause: err });
      if (!isS3NotFound(err)) throw unavailable("object storage", err); // NoSuchUpload: already gone
    }
  }

  /** Unix seconds of an upload's latest part; 0 when it has none (or finished meanwhile). */
  private async newestPart(key: string, uploadId: string): Promise<number> {
    let newest = 0;
    let marker: string | undefined;
    if (!this.capabilities.has("ListParts")) return 0;
    try {
      do {
        const page = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker }));
        for (const part of page.Parts ?? []) newest = Math.max(newest, unixSeconds(part.LastModified));
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker);
    } catch (err) {
      if (this.capabilities.lacks("ListParts", err)) return 0;
      if (!isS3NotFound(err)) throw unavailable("object storage", err);
    }
    return newest;
  }

  /** Store features found missing so far (for tests and diagnostics). */
  get unsupportedFeatures(): readonly string[] {
    return this.capabilities.unsupported;
  }

  private abortFailed(key: string, uploadId: string, error: unknown): void {
    this.onAbortFailed?.({ key, uploadId, error, leftForLifecycle: error instanceof UnsupportedByStore });
  }

  /** Best effort: the caller is already failing with a better error than this one. */
  private async deleteQuietly(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => {});
  }
}

/** Parts copied at once by compose: the bytes move inside S3, so this only bounds open requests. */
const COPY_CONCURRENCY = 8;

/** The checksums S3 reports for a part; CompleteMultipartUpload must repeat them (as lib-storage does). */
function partChecksums(out: Omit<SentPart, "ETag">): Omit<SentPart, "ETag"> {
  return {
    ...(out.ChecksumCRC32 && { ChecksumCRC32: out.ChecksumCRC32 }),
    ...(out.ChecksumCRC32C && { ChecksumCRC32C: out.ChecksumCRC32C }),
    ...(out.ChecksumCRC64NVME && { ChecksumCRC64NVME: out.ChecksumCRC64NVME }),
    ...(out.ChecksumSHA1 && { ChecksumSHA1: out.ChecksumSHA1 }),
    ...(out.ChecksumSHA256 && { ChecksumSHA256: out.ChecksumSHA256 }),
  };
}

/** x-amz-copy-source: the bucket and the URL-encoded key (its slashes may stay). */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${encodeURIComponent(key).replace(/%2F/g, "/")}`;
}

/** `fn` over `items` with at most `concurrency` running; results in the items' order. Fails on the first failure, after the rest settle. */
async function mapInOrder<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failed) throw failed.error;
  return results;
}

function storageUnavailable(err: unknown): never {
  throw unavailable("object storage", err);
}

function unixSeconds(date: Date | undefined): number {
  return date ? Math.floor(date.getTime() / 1000) : 0;
}
