import { BigIntType, EntitySchema } from "@mikro-orm/core";
import type { FileRecord } from "../files/ports.js";

/**
 * One row of `openai_files`. Llama Stack's files provider writes the first six columns of this
 * same table, so their names and meanings (unix seconds, size in bytes) must stay as they are.
 * It is the core's record, except that a row may hold any purpose or status string.
 */
export type FileRow = Omit<FileRecord, "purpose" | "status" | "accessAttributes"> & {
  purpose: string;
  status: string;
  /** JSON as stored (text on SQLite, parsed on PostgreSQL); see access-sql.ts. */
  accessAttributes?: unknown;
};

export const FILES_TABLE = "openai_files";

// bigint columns come back from pg as strings; BigIntType("number") turns them into JS numbers
// (safe up to 2^53, far beyond any file size or unix time we store). Never int4: files reach 8 GiB.
const bigint = () => new BigIntType("number");

/** Column types here only describe the table; migrations.ts owns the DDL. */
export const FileEntity = new EntitySchema<FileRow>({
  name: "OpenAiFile",
  tableName: FILES_TABLE,
  properties: {
    id: { type: "string", columnType: "text", primary: true },
    filename: { type: "text" },
    purpose: { type: "string", columnType: "varchar(64)" },
    bytes: { type: bigint(), columnType: "bigint" },
    createdAt: { type: bigint(), columnType: "bigint", fieldName: "created_at" },
    expiresAt: { type: bigint(), columnType: "bigint", fieldName: "expires_at", nullable: true },
    mimeType: { type: "text", fieldName: "mime_type" },
    sha256: { type: "string", columnType: "varchar(64)" },
    storageKey: { type: "text", fieldName: "storage_key" },
    status: { type: "string", columnType: "varchar(32)" },
    ownerPrincipal: { type: "text", fieldName: "owner_principal", nullable: true },
    accessAttributes: { type: "unknown", columnType: "json", fieldName: "access_attributes", nullable: true },
  },
});

export const DELETED_FILES_TABLE = "openai_files_deleted";

/**
 * One row per (file, attribute name, value) of `openai_files.access_attributes`, kept by triggers
 * (migration 0008), so that listing under a sharing policy walks an index per shared value.
 */
export const ACCESS_VALUES_TABLE = "openai_file_access_values";

/** Where a deleted file sat in the list order, kept for a while so `after` cursors naming it still work. */
export interface DeletedFileRow {
  id: string;
  createdAt: number;
  deletedAt: number;
  /** The deleted file's owner, so only that principal can page on from it. */
  ownerPrincipal: string | null;
  /** And its owner's attributes, so the access policy decides about the cursor as it did about the file. */
  accessAttributes?: unknown;
}

export const DeletedFileEntity = new EntitySchema<DeletedFileRow>({
  name: "OpenAiDeletedFile",
  tableName: DELETED_FILES_TABLE,
  properties: {
    id: { type: "string", columnType: "text", primary: true },
    createdAt: { type: bigint(), columnType: "bigint", fieldName: "created_at" },
    deletedAt: { type: bigint(), columnType: "bigint", fieldName: "deleted_at" },
    ownerPrincipal: { type: "text", fieldName: "owner_principal", nullable: true },
    accessAttributes: { type: "unknown", columnType: "json", fieldName: "access_attributes", nullable: true },
  },
});
