import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  ExpiresAfterAnchor,
  FilePurpose,
  FilesService as FilesServiceDesc,
  ListOrder,
  type UploadFileMetadata,
  type UploadFileRequest,
} from "../../../gen/ts/files/v1/files_pb.js";
import type { FilesService } from "../../files/files-service.js";
import type { UploadRequest } from "../../files/upload-request.js";
import { purposeName, toFileMessage } from "./file-message.js";
import { principalOf } from "./principal.js";

/**
 * Bytes per DownloadFileResponse. The protobuf encoder grows its buffer in powers of two from
 * 128 bytes, so a payload just under 256 KiB encodes into a 256 KiB buffer, not a 512 KiB one.
 */
const DOWNLOAD_CHUNK = 256 * 1024 - 64;

type FileRpcs = Pick<ServiceImpl<typeof FilesServiceDesc>, "uploadFile" | "downloadFile" | "getFile" | "listFiles" | "deleteFile">;

/** The Files RPCs, each a thin translation onto the core. */
export function filesHandlers(files: FilesService): FileRpcs {
  return {
    async uploadFile(requests, ctx) {
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done) throw invalid("the upload stream ended before its metadata message");
      if (first.value.payload.case !== "metadata") {
        throw invalid("the first UploadFileRequest must carry metadata; chunks come after it");
      }
      const record = await files.upload(uploadRequest(first.value.payload.value), chunksOf(messages), {
        signal: ctx.signal,
        owner: principalOf(ctx),
      });
      return { file: toFileMessage(record) };
    },

    async *downloadFile(req, ctx) {
      const download = await files.download(
        req.fileId,
        { offset: Number(req.offset), length: req.length === undefined ? undefined : Number(req.length) },
        { signal: ctx.signal, owner: principalOf(ctx) },
      );
      yield { payload: { case: "file", value: toFileMessage(download.file) } };
      for await (const chunk of rechunk(download.body, DOWNLOAD_CHUNK)) {
        yield { payload: { case: "chunk", value: chunk } };
      }
    },

    async getFile(req, ctx) {
      return { file: toFileMessage(await files.get(req.fileId, principalOf(ctx))) };
    },

    async listFiles(req, ctx) {
      const page = await files.list({
        owner: principalOf(ctx),
        after: req.after || undefined,
        limit: req.limit,
        order: req.order === ListOrder.ASC ? "asc" : "desc",
        purpose: req.purpose === FilePurpose.UNSPECIFIED ? undefined : purposeName(req.purpose),
      });
      return {
        data: page.data.map(toFileMessage),
        hasMore: page.hasMore,
        firstId: page.firstId ?? undefined,
        lastId: page.lastId ?? undefined,
      };
    },

    async deleteFile(req, ctx) {
      return files.delete(req.fileId, principalOf(ctx));
    },
  };
}

function uploadRequest(meta: UploadFileMetadata): UploadRequest {
  const expires = meta.expiresAfter;
  if (expires && expires.anchor !== ExpiresAfterAnchor.CREATED_AT && expires.anchor !== ExpiresAfterAnchor.UNSPECIFIED) {
    throw invalid("expires_after.anchor must be CREATED_AT");
  }
  return {
    filename: meta.filename,
    purpose: purposeName(meta.purpose),
    mimeType: meta.mimeType,
    expiresAfterSeconds: expires ? Number(expires.seconds) : undefined,
    sizeBytes: meta.sizeBytes === undefined ? undefined : Number(meta.sizeBytes),
    sha256: meta.sha256,
  };
}

async function* chunksOf(messages: AsyncIterator<UploadFileRequest>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const next = await messages.next();
    if (next.done) return;
    if (next.value.payload.case !== "chunk") {
      throw invalid("after the first UploadFileRequest, every message must carry a chunk");
    }
    yield next.value.payload.value;
  }
}

/**
 * Re-chunks a byte stream into pieces of exactly `size` bytes (the last may be shorter).
 * S3 bodies arrive in 16–64 KiB reads; each gRPC message costs a frame, an encode and often a
 * flow-control round trip, so fewer, larger messages move the same bytes faster.
 */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    pendingBytes += chunk.byteLength;
    if (pendingBytes < size) continue;
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    let at = 0;
    for (; joined.byteLength - at >= size; at += size) yield joined.subarray(at, at + size);
    pending = at < joined.byteLength ? [joined.subarray(at)] : [];
    pendingBytes = joined.byteLength - at;
  }
  if (pendingBytes > 0) yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
