import { BigIntType, EntitySchema } from "@mikro-orm/core";
import type { UploadPartRecord, UploadRecord } from "../files/ports.js";

export const UPLOADS_TABLE = "openai_uploads";
export const UPLOAD_PARTS_TABLE = "openai_upload_parts";

/** A row may hold any purpose or status string; the repository narrows them. */
export type UploadRow = Omit<UploadRecord, "purpose" | "status" | "accessAttributes"> & {
  purpose: string;
  status: string;
  /** JSON as stored; see access-sql.ts. */
  accessAttributes?: unknown;
};

const bigint = () => new BigIntType("number");

/** Column types here only describe the tables; migrations.ts owns the DDL. */
export const UploadEntity = new EntitySchema<UploadRow>({
  name: "OpenAiUpload",
  tableName: UPLOADS_TABLE,
  properties: {
    id: { type: "string", columnType: "text", primary: true },
    filename: { type: "text" },
    purpose: { type: "string", columnType: "varchar(64)" },
    bytes: { type: bigint(), columnType: "bigint" },
    mimeType: { type: "text", fieldName: "mime_type" },
    createdAt: { type: bigint(), columnType: "bigint", fieldName: "created_at" },
    expiresAt: { type: bigint(), columnType: "bigint", fieldName: "expires_at" },
    fileExpiresAfterSeconds: { type: bigint(), columnType: "bigint", fieldName: "file_expires_after_seconds", nullable: true },
    status: { type: "string", columnType: "varchar(32)" },
    fileId: { type: "text", fieldName: "file_id", nullable: true },
    ownerPrincipal: { type: "text", fieldName: "owner_principal", nullable: true },
    accessAttributes: { type: "unknown", columnType: "json", fieldName: "access_attributes", nullable: true },
  },
});

export const UploadPartEntity = new EntitySchema<UploadPartRecord>({
  name: "OpenAiUploadPart",
  tableName: UPLOAD_PARTS_TABLE,
  properties: {
    id: { type: "string", columnType: "text", primary: true },
    uploadId: { type: "text", fieldName: "upload_id" },
    bytes: { type: bigint(), columnType: "bigint" },
    sha256: { type: "string", columnType: "varchar(64)" },
    storageKey: { type: "text", fieldName: "storage_key" },
    createdAt: { type: bigint(), columnType: "bigint", fieldName: "created_at" },
  },
});
