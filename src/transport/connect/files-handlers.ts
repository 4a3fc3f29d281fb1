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

/** Largest chunk sent in one DownloadFileResponse; bigger store reads are split (without copying). */
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
      for await (const chunk of download.body) {
        for (let at = 0; at < chunk.byteLength; at += MAX_DOWNLOAD_CHUNK) {
          yield { payload: { case: "chunk", value: chunk.subarray(at, at + MAX_DOWNLOAD_CHUNK) } };
        }
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

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
