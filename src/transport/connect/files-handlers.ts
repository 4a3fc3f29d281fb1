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

/** DownloadFileResponse chunk sizes: small store reads are joined, large ones split. */
const MIN_DOWNLOAD_CHUNK = 256 * 1024;
const MAX_DOWNLOAD_CHUNK = 1024 * 1024;

/** FilesService RPCs, each a thin translation onto the core. */
export function filesHandlers(files: FilesService): ServiceImpl<typeof FilesServiceDesc> {
  return {
    async uploadFile(requests, ctx) {
      const messages = requests[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done) throw invalid("the upload stream ended before its metadata message");
      if (first.value.payload.case !== "metadata") {
        throw invalid("the first UploadFileRequest must carry metadata; chunks come after it");
      }
      const record = await files.upload(uploadRequest(first.value.payload.value), chunksOf(messages), ctx.signal);
      return { file: toFileMessage(record) };
    },

    async *downloadFile(req, ctx) {
      const download = await files.download(
        req.fileId,
        { offset: Number(req.offset), length: req.length === undefined ? undefined : Number(req.length) },
        ctx.signal,
      );
      yield { payload: { case: "file", value: toFileMessage(download.file) } };
      for await (const chunk of coalesce(download.body, MIN_DOWNLOAD_CHUNK, MAX_DOWNLOAD_CHUNK)) {
        yield { payload: { case: "chunk", value: chunk } };
      }
    },

    async getFile(req) {
      return { file: toFileMessage(await files.get(req.fileId)) };
    },

    async listFiles(req) {
      const page = await files.list({
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

    async deleteFile(req) {
      return files.delete(req.fileId);
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
 * Re-chunks a byte stream into pieces of at least `min` (except the last) and at most `max` bytes.
 * S3 bodies arrive in 16–64 KiB reads; each gRPC message costs a frame, an encode and often a
 * flow-control round trip, so fewer, larger messages move the same bytes faster.
 */
async function* coalesce(source: AsyncIterable<Uint8Array>, min: number, max: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    size += chunk.byteLength;
    if (size < min) continue;
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, size);
    for (let at = 0; at < joined.byteLength; at += max) yield joined.subarray(at, at + max);
    pending = [];
    size = 0;
  }
  if (size > 0) yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, size);
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
