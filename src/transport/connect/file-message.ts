import { create } from "@bufbuild/protobuf";
import { FilePurpose, FileSchema, FileStatus, type File } from "../../../gen/ts/files/v1/files_pb.js";
import type { FileRecord } from "../../files/ports.js";
import type { Purpose } from "../../files/purposes.js";

const PURPOSE_TO_ENUM: Record<Purpose, FilePurpose> = {
  assistants: FilePurpose.ASSISTANTS,
  assistants_output: FilePurpose.ASSISTANTS_OUTPUT,
  batch: FilePurpose.BATCH,
  batch_output: FilePurpose.BATCH_OUTPUT,
  "fine-tune": FilePurpose.FINE_TUNE,
  "fine-tune-results": FilePurpose.FINE_TUNE_RESULTS,
  vision: FilePurpose.VISION,
  user_data: FilePurpose.USER_DATA,
  evals: FilePurpose.EVALS,
};

const ENUM_TO_PURPOSE = new Map<FilePurpose, Purpose>(
  Object.entries(PURPOSE_TO_ENUM).map(([name, value]) => [value, name as Purpose]),
);

/**
 * The purpose's OpenAI name; "" for UNSPECIFIED (the core answers "purpose is required"),
 * and a descriptive name for numbers this server does not know (the core rejects it by name).
 */
export function purposeName(purpose: FilePurpose): string {
  if (purpose === FilePurpose.UNSPECIFIED) return "";
  return ENUM_TO_PURPOSE.get(purpose) ?? `FilePurpose(${purpose})`;
}

export function purposeMessage(purpose: Purpose): FilePurpose {
  return PURPOSE_TO_ENUM[purpose];
}

export function toFileMessage(record: FileRecord): File {
  return create(FileSchema, {
    id: record.id,
    bytes: BigInt(record.bytes),
    createdAt: BigInt(record.createdAt),
    expiresAt: record.expiresAt === null ? undefined : BigInt(record.expiresAt),
    filename: record.filename,
    purpose: PURPOSE_TO_ENUM[record.purpose],
    mimeType: record.mimeType,
    sha256: record.sha256,
    status: FileStatus.PROCESSED,
  });
}
