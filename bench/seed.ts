/**
 * Seeds N file rows straight into each server's SQLite metadata table while that server is stopped:
 * 100,000 uploads through the APIs would take many minutes per target (the reference stores each
 * one with a blocking PutObject), and list and retrieve read only metadata in both services
 * (this service's FilesService.get/list, the reference's openai_retrieve_file/openai_list_files),
 * so no object needs to exist behind a seeded row.
 *
 * Both tables get the same files (ids, names, purposes, sizes, creation times), each in its own
 * schema, with exactly the values the server itself writes for an upload: this service's
 * migrations create `openai_files` with mime_type, sha256, storage_key (key prefix + id), status;
 * Llama Stack 0.7.3 creates `openai_files` with access_attributes (JSON 'null') and
 * owner_principal ('') and encodes "never expires" as created_at + 42 × 30 days.
 * Creation times are one second apart, newest now: the reference pages with `created_at < cursor`
 * and skips rows that share the cursor's second, which distinct times keep out of the comparison.
 * The column lists are checked first, so a schema change fails loudly here instead of seeding junk
 * (columns added later that are nullable or have a default are left to those).
 */
import { createHash, randomBytes } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { log } from "./lifecycle.js";

export interface SeedFile {
  id: string;
  filename: string;
  purpose: "assistants" | "batch";
  bytes: number;
  createdAt: number;
  /** As this service stores it: null for never; batch files expire after 30 days in both. */
  expiresAt: number | null;
  sha256: string;
  mimeType: string;
}

const THIRTY_DAYS = 2_592_000;
/** Llama Stack 0.7.3's stand-in for "never expires" (ExpiresAfter.MAX * 42 past creation). */
const REFERENCE_NEVER = 42 * THIRTY_DAYS;

/** `count` files, one per second up to `now`; one in ten is a batch file, as both APIs accept. */
export function seedFiles(count: number, now: number): SeedFile[] {
  const files: SeedFile[] = [];
  const kinds = [
    { ext: "jsonl", mime: "application/jsonl" },
    { ext: "pdf", mime: "application/pdf" },
    { ext: "txt", mime: "text/plain" },
    { ext: "md", mime: "text/markdown" },
  ];
  for (let i = 0; i < count; i++) {
    const id = `file-${randomBytes(16).toString("hex")}`;
    const batch = i % 10 === 0;
    const kind = batch ? kinds[0]! : kinds[i % kinds.length]!;
    const createdAt = now - (count - 1 - i);
    files.push({
      id,
      filename: `${batch ? "batch" : "doc"}-${String(i).padStart(6, "0")}.${kind.ext}`,
      purpose: batch ? "batch" : "assistants",
      // 1 KiB to 2 MiB, spread log-uniformly like a real mix of documents.
      bytes: Math.round(1024 * 2 ** ((i * 7919) % 12)) + (i % 1000),
      createdAt,
      expiresAt: batch ? createdAt + THIRTY_DAYS : null,
      // A stand-in digest (there is no object to hash), well-formed like a real one.
      sha256: createHash("sha256").update(id).digest("hex"),
      mimeType: kind.mime,
    });
  }
  return files;
}

const SERVICE_COLUMNS = ["id", "filename", "purpose", "bytes", "created_at", "expires_at", "mime_type", "sha256", "storage_key", "status", "owner_principal"];
const REFERENCE_COLUMNS = ["id", "filename", "purpose", "bytes", "created_at", "expires_at", "access_attributes", "owner_principal"];

let sqliteModule: Promise<typeof import("node:sqlite")> | undefined;

/** node:sqlite, without its one-time ExperimentalWarning on stderr (the only experimental API used). */
function loadSqlite(): Promise<typeof import("node:sqlite")> {
  sqliteModule ??= (async () => {
    const emit = process.emitWarning;
    process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
      if (String(warning).includes("SQLite")) return;
      (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
    }) as typeof process.emitWarning;
    try {
      return await import("node:sqlite");
    } finally {
      process.emitWarning = emit;
    }
  })();
  return sqliteModule;
}

/**
 * Every column the seed writes must exist; any other column must be one an INSERT may leave out
 * (nullable or with a default), as a newer migration's additions are. Anything else fails loudly.
 */
function checkColumns(db: DatabaseSync, expected: string[], what: string): void {
  const rows = db.prepare(`select name, "notnull" as not_null, dflt_value as dflt, pk from pragma_table_info('openai_files')`).all() as {
    name: string;
    not_null: number;
    dflt: unknown;
    pk: number;
  }[];
  if (rows.length === 0) throw new Error(`${what}: no openai_files table yet (the server must have started once)`);
  const missing = expected.filter((c) => !rows.some((r) => r.name === c));
  const required = rows.filter((r) => !expected.includes(r.name) && (r.not_null === 1 || r.pk > 0) && r.dflt === null).map((r) => r.name);
  if (missing.length > 0 || required.length > 0) {
    throw new Error(
      `${what}: openai_files has columns [${rows.map((r) => r.name).join(", ")}]; the seed writes [${expected.join(", ")}]` +
        `${missing.length ? `, missing [${missing.join(", ")}]` : ""}${required.length ? `, and cannot leave out [${required.join(", ")}]` : ""}: update bench/seed.ts`,
    );
  }
  const extra = rows.filter((r) => !expected.includes(r.name)).map((r) => r.name);
  if (extra.length > 0) log(`${what}: leaving newer column(s) ${extra.join(", ")} at their defaults`);
}

async function insertAll(dbPath: string, expected: string[], what: string, files: SeedFile[], row: (f: SeedFile) => (string | number | null)[]): Promise<void> {
  const { DatabaseSync } = await loadSqlite();
  const db = new DatabaseSync(dbPath);
  try {
    checkColumns(db, expected, what);
    const insert = db.prepare(`insert into openai_files (${expected.map((c) => `"${c}"`).join(", ")}) values (${expected.map(() => "?").join(", ")})`);
    db.exec("begin");
    for (const f of files) insert.run(...row(f));
    db.exec("commit");
  } finally {
    db.close();
  }
}

/** Inserts `files` into this service's metadata database (stopped), as its FilesService would. */
export function seedService(dbPath: string, files: SeedFile[], keyPrefix = ""): Promise<void> {
  return insertAll(dbPath, SERVICE_COLUMNS, `this service's database ${dbPath}`, files, (f) => [
    f.id,
    f.filename,
    f.purpose,
    f.bytes,
    f.createdAt,
    f.expiresAt,
    f.mimeType,
    f.sha256,
    keyPrefix + f.id,
    "processed",
    null,
  ]);
}

/** Inserts `files` into the reference's sql_store (stopped), as S3FilesImpl.openai_upload_file would without auth. */
export function seedReference(dbPath: string, files: SeedFile[]): Promise<void> {
  return insertAll(dbPath, REFERENCE_COLUMNS, `the reference's database ${dbPath}`, files, (f) => [
    f.id,
    f.filename,
    f.purpose,
    f.bytes,
    f.createdAt,
    f.expiresAt ?? f.createdAt + REFERENCE_NEVER,
    "null",
    "",
  ]);
}

/** Rows in a server's openai_files (to check a seed landed, and to report it). */
export async function countRows(dbPath: string): Promise<number> {
  const { DatabaseSync } = await loadSqlite();
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return Number((db.prepare("select count(*) as n from openai_files").get() as { n: number }).n);
  } finally {
    db.close();
  }
}
