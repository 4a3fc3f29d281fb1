import { STREAMED_PART_DATA } from "./streamed-part-data.js";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ExpiresAfterAnchor,
  FilesService as FilesServiceDesc,
  UploadPartSchema,
  UploadSchema,
  UploadStatus,
  type ExpiresAfter,
  type Upload,
  type UploadPart,
} from "../../../gen/ts/files/v1/files_pb.js";
import { invalidArgument } from "../../files/errors.js";
import type { UploadPartRecord } from "../../files/ports.js";
import type { UploadsService, UploadView } from "../../files/uploads-service.js";
import { purposeMessage, purposeName, toFileMessage } from "./file-message.js";
import { principalOf } from "./principal.js";

type UploadRpcs = Pick<ServiceImpl<typeof FilesServiceDesc>, "createUpload" | "addUploadPart" | "completeUpload" | "cancelUpload" | "getUpload">;

/** The Uploads RPCs: unary, so a browser can send a large file part by part. */
export function uploadsHandlers(uploads: UploadsService): UploadRpcs {
  return {
    async createUpload(req, ctx) {
      const view = await uploads.create({
        owner: principalOf(ctx),
        filename: req.filename,
        purpose: purposeName(req.purpose),
        bytes: Number(req.bytes),
        mimeType: req.mimeType,
        expiresAfterSeconds: expiresAfterSeconds(req.expiresAfter),
      });
      return { upload: toUploadMessage(view) };
    },

    async addUploadPart(req, ctx) {
      // The gRPC fast path streams data from the wire; elsewhere it is in the decoded message.
      const data = ctx.values.get(STREAMED_PART_DATA) ?? once(req.data);
      const part = await uploads.addPart(req.uploadId, data, { signal: ctx.signal, owner: principalOf(ctx) });
      return { part: toPartMessage(part) };
    },

    async completeUpload(req, ctx) {
      const view = await uploads.complete(req.uploadId, req.partIds, { md5: req.md5 || undefined, owner: principalOf(ctx) });
      return { upload: toUploadMessage(view) };
    },

    async cancelUpload(req, ctx) {
      return { upload: toUploadMessage(await uploads.cancel(req.uploadId, principalOf(ctx))) };
    },

    async getUpload(req, ctx) {
      return { upload: toUploadMessage(await uploads.get(req.uploadId, principalOf(ctx))) };
    },
  };
}

function expiresAfterSeconds(expires: ExpiresAfter | undefined): number | undefined {
  if (!expires) return undefined;
  if (expires.anchor !== ExpiresAfterAnchor.CREATED_AT && expires.anchor !== ExpiresAfterAnchor.UNSPECIFIED) {
    throw invalidArgument("expires_after.anchor", "expires_after.anchor must be CREATED_AT");
  }
  return Number(expires.seconds);
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

const STATUS: Record<UploadView["upload"]["status"], UploadStatus> = {
  pending: UploadStatus.PENDING,
  completed: UploadStatus.COMPLETED,
  cancelled: UploadStatus.CANCELLED,
  expired: UploadStatus.EXPIRED,
};

function toUploadMessage({ upload, file }: UploadView): Upload {
  return create(UploadSchema, {
    id: upload.id,
    filename: upload.filename,
    purpose: purposeMessage(upload.purpose),
    bytes: BigInt(upload.bytes),
    mimeType: upload.mimeType,
    createdAt: BigInt(upload.createdAt),
    expiresAt: BigInt(upload.expiresAt),
    status: STATUS[upload.status],
    file: file ? toFileMessage(file) : undefined,
  });
}

function toPartMessage(part: UploadPartRecord): UploadPart {
  return create(UploadPartSchema, {
    id: part.id,
    uploadId: part.uploadId,
    createdAt: BigInt(part.createdAt),
    bytes: BigInt(part.bytes),
    sha256: part.sha256,
  });
}
