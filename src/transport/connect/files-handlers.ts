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
import { cutToSize, JOINS_DOWNLOAD_CHUNKS, rechunk } from "./download-chunks.js";
import { principalOf } from "./principal.js";

/**
 * Most bytes per DownloadFileResponse: as large as local files are read, so their reads pass
 * through whole. Room is left for the message's own framing under the message-size limit.
 */
const DOWNLOAD_CHUNK = 256 * 1024;
const MESSAGE_FRAMING_BYTES = 16;

type FileRpcs = Pick<ServiceImpl<typeof FilesServiceDesc>, "uploadFile" | "downloadFile" | "getFile" | "listFiles" | "deleteFile">;

/** The Files RPCs, each a thin translation onto the core. `maxMessageBytes` bounds every response message. */
export function filesHandlers(files: FilesService, maxMessageBytes: number): FileRpcs {
  const downloadChunk = Math.min(DOWNLOAD_CHUNK, maxMessageBytes - MESSAGE_FRAMING_BYTES);
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
      // A transport that joins chunks itself gets the reads as they come, cut to the message limit.
      const reads = ctx.values.get(JOINS_DOWNLOAD_CHUNKS) ? download.body : rechunk(download.body, downloadChunk);
      for await (const read of reads) {
        for (const chunk of cutToSize(read, downloadChunk)) yield { payload: { case: "chunk", value: chunk } };
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

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
