import { raw, type FilterQuery, type MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/knex";
import { PostgreSqlPlatform } from "@mikro-orm/postgresql";
import type { FileRecord, FileRepository, ListQuery, StorageKeyRow } from "../files/ports.js";
import type { Purpose } from "../files/purposes.js";
import { attributesFromColumn, attributesToColumn, withAttributes, type SqlCondition } from "./access-sql.js";
import { listPlan, runBranches } from "./list-sql.js";
import type { FilePosition } from "../files/ports.js";
import { DELETED_FILES_TABLE, DeletedFileEntity, FILES_TABLE, FileEntity, type FileRow } from "./entity.js";
import { NOT_HERE, type SqliteReads } from "./sqlite-reads.js";

/** How long a deleted file's list position is remembered: longer than any walk through a listing. */
export const CURSOR_MEMORY_SECONDS = 7 * 24 * 3600;

/** FileRepository on MikroORM (SQLite or PostgreSQL); open.ts builds one. */
export class MikroOrmFileRepository implements FileRepository {
  constructor(
    private readonly orm: MikroORM<AbstractSqlDriver>,
    /** SQLite only: a read-only node:sqlite connection that serves findById when it can. */
    private readonly reads?: SqliteReads,
  ) {}

  /** A fresh EntityManager per operation: no identity map shared between requests. */
  private em(): SqlEntityManager {
    return this.orm.em.fork() as SqlEntityManager;
  }

  async insert(record: FileRecord): Promise<void> {
    // Every upload's one write, as plain SQL like findById: the ORM's insert path was about a tenth
    // of a small upload's CPU. A duplicate id is rejected by the primary key.
    const r = toRow(record);
    await this.orm.em
      .getConnection()
      .execute(
        `insert into ${FILES_TABLE} (${FILE_COLUMNS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          r.id, r.filename, r.purpose, r.bytes, r.createdAt, r.expiresAt, r.mimeType, r.sha256, r.storageKey, r.status, r.ownerPrincipal,
          attributesToColumn(record.accessAttributes),
        ],
        "run",
      );
  }

  async findById(id: string, now: number): Promise<FileRecord | undefined> {
    // The hottest read (retrieve, content, download): plain SQL. The ORM's query building and
    // entity hydration were most of its CPU and of its latency tail (BENCHMARKS.md, "retrieve").
    const params = [id, now, LLAMA_STACK_NO_EXPIRY_SECONDS];
    const read = this.reads ? this.reads.get<FileColumns>(FIND_BY_ID_SQL, params) : NOT_HERE;
    if (read !== NOT_HERE) return read ? toRecord(fromColumns(read)) : undefined;
    const rows = await this.orm.em.getConnection().execute<FileColumns[]>(FIND_BY_ID_SQL, params);
    return rows[0] ? toRecord(fromColumns(rows[0])) : undefined;
  }

  async list(query: ListQuery): Promise<FileRecord[]> {
    if (query.limit <= 0) return [];
    // Plain SQL like findById: MikroORM's hydration was most of a page's CPU.
    const plan = listPlan(query, { dialect: this.dialect(), columns: FILE_COLUMN_LIST, notExpired });
    if (plan.t === "none") return [];
    let rows: FileColumns[] | undefined;
    if (this.reads) {
      const reads = this.reads;
      const run = (statement: SqlCondition) => {
        const found = reads.all<FileColumns>(statement.sql, statement.params as (string | number)[]);
        return found === NOT_HERE ? undefined : found;
      };
      // On this connection a statement costs microseconds: the branches one by one, each bounded.
      rows = plan.t === "scan" ? run(plan.statement) : runBranches(plan, query, run);
    }
    if (rows === undefined) {
      const statement = plan.t === "scan" ? plan.statement : plan.union;
      rows = await this.orm.em.getConnection().execute<FileColumns[]>(statement.sql, statement.params as never[]);
    }
    return rows.map((row) => toRecord(fromColumns(row)));
  }

  async position(id: string): Promise<FilePosition | undefined> {
    // Every page with an `after` cursor asks this first: plain SQL like findById.
    const read = this.reads ? this.reads.get<PositionColumns>(POSITION_SQL, [id, id]) : NOT_HERE;
    const row = read !== NOT_HERE ? read : (await this.orm.em.getConnection().execute<PositionColumns[]>(POSITION_SQL, [id, id]))[0];
    return row
      ? { createdAt: Number(row.created_at), id, ownerPrincipal: row.owner_principal ?? null, ...withAttributes(row.access_attributes, Number(row.k) === 1) }
      : undefined;
  }

  async delete(id: string, now: number): Promise<boolean> {
    return this.em().transactional(async (em) => {
      const row = await em.findOne(FileEntity, { id }, { fields: ["createdAt", "ownerPrincipal", "accessAttributes"] });
      // Of two racing deletes, the database lets one DELETE take the row; the other sees 0.
      if (!row || (await em.nativeDelete(FileEntity, { id })) === 0) return false;
      await em.insert(DeletedFileEntity, {
        id,
        createdAt: Number(row.createdAt),
        deletedAt: now,
        ownerPrincipal: row.ownerPrincipal ?? null,
        // A fresh object (parsed attributes are shared and frozen; the ORM writes into what it is
        // given): the json column serializes it (given the JSON text, it encoded it twice).
        accessAttributes: structuredClone(attributesFromColumn(row.accessAttributes)),
      });
      // Forgetting old positions here keeps the table small without a sweep of its own.
      await em.nativeDelete(DeletedFileEntity, { deletedAt: { $lt: now - CURSOR_MEMORY_SECONDS } });
      return true;
    });
  }

  async claimExpired(now: number, limit: number, claimUntil: number): Promise<FileRecord[]> {
    if (limit <= 0) return [];
    const em = this.em();
    // One UPDATE takes the rows. On PostgreSQL, SKIP LOCKED lets concurrent replicas pass over each
    // other's rows instead of waiting, and the outer condition is re-checked on a row another claim
    // committed meanwhile, so it is never taken twice. SQLite has a single writer: the statement is atomic.
    const ids = await claimIds(
      em,
      `update "${FILES_TABLE}" set "reap_claimed_until" = ? where "id" in (
        select "id" from "${FILES_TABLE}"
        where "expires_at" <= ? and ("reap_claimed_until" is null or "reap_claimed_until" < ?)
          and "expires_at" <> "created_at" + ?
        order by "expires_at", "id" limit ?${skipLocked(em)}
      ) and ("reap_claimed_until" is null or "reap_claimed_until" < ?) returning "id"`,
      // Llama Stack's "no expiry" rows are never expired (see visibleAt), so never reaped.
      [claimUntil, now, now, LLAMA_STACK_NO_EXPIRY_SECONDS, limit, now],
    );
    if (ids.length === 0) return [];
    const rows = await em.find(FileEntity, { id: { $in: ids } }, { orderBy: { expiresAt: "asc", id: "asc" } });
    return rows.map(toRecord);
  }

  async listStorageKeys(afterId: string | undefined, limit: number): Promise<StorageKeyRow[]> {
    if (limit <= 0) return [];
    const rows = await this.em().find(
      FileEntity,
      afterId === undefined ? {} : { id: { $gt: afterId } },
      { fields: ["id", "storageKey"], orderBy: { id: "asc" }, limit },
    );
    return rows.map((row) => ({ id: row.id, storageKey: row.storageKey }));
  }

  private dialect(): "sqlite" | "postgresql" {
    return this.orm.em.getPlatform() instanceof PostgreSqlPlatform ? "postgresql" : "sqlite";
  }

  async ping(): Promise<void> {
    await this.em().getConnection().execute("select 1");
  }

  async close(): Promise<void> {
    this.reads?.close();
    await this.orm.close(true);
  }
}

/** Runs a claiming `update ... returning "id"` and gives the ids it took. */
export async function claimIds(em: SqlEntityManager, sql: string, params: unknown[]): Promise<string[]> {
  const rows = await em.getConnection().execute<{ id: string }[]>(sql, params as never[], "all");
  return rows.map((row) => String(row.id));
}

/** The row lock clause of a claim's inner select: PostgreSQL skips rows another claim is taking. */
export function skipLocked(em: SqlEntityManager): string {
  return em.getPlatform() instanceof PostgreSqlPlatform ? " for update skip locked" : "";
}

/**
 * Llama Stack's "no expiry": it stores created_at + 42 × 30 days (about 3.45 years, not forever),
 * since its queries filter on expires_at > now, which a null would fail. Such rows read as never
 * expiring here, and keep their stored value so that Llama Stack can still read them.
 */
export const LLAMA_STACK_NO_EXPIRY_SECONDS = 42 * 2_592_000;

/** visibleAt in SQL, for the plain queries; its parameters are `now` and the Llama Stack sentinel. */
const VISIBLE_SQL = `(expires_at is null or expires_at > ? or expires_at = created_at + ?)`;

/** visibleAt on the row `alias`, with its parameters. */
function notExpired(alias: string, now: number): SqlCondition {
  const c = (name: string) => `${alias}."${name}"`;
  return {
    sql: `(${c("expires_at")} is null or ${c("expires_at")} > ? or ${c("expires_at")} = ${c("created_at")} + ?)`,
    params: [now, LLAMA_STACK_NO_EXPIRY_SECONDS],
  };
}

const FILE_COLUMN_LIST = [
  "id", "filename", "purpose", "bytes", "created_at", "expires_at", "mime_type", "sha256", "storage_key", "status", "owner_principal", "access_attributes",
] as const;
const FILE_COLUMNS = FILE_COLUMN_LIST.join(", ");

const FIND_BY_ID_SQL = `select ${FILE_COLUMNS} from ${FILES_TABLE} where id = ? and ${VISIBLE_SQL} limit 1`;

/** A live row first, else a remembered deleted position. */
const POSITION_SQL = `select k, created_at, owner_principal, access_attributes from (
    select 0 as k, created_at, owner_principal, access_attributes from ${FILES_TABLE} where id = ?
    union all
    select 1 as k, created_at, owner_principal, access_attributes from ${DELETED_FILES_TABLE} where id = ?
  ) as p order by k limit 1`;

interface PositionColumns {
  /** 0: a live row; 1: a remembered deleted position. */
  k: number | string;
  created_at: number | string;
  owner_principal: string | null;
  access_attributes: unknown;
}

/** A row as the database names its columns (bigints arrive as strings from PostgreSQL). */
interface FileColumns {
  id: string;
  filename: string;
  purpose: string;
  bytes: number | string;
  created_at: number | string;
  expires_at: number | string | null;
  mime_type: string;
  sha256: string;
  storage_key: string;
  status: string;
  owner_principal: string | null;
  access_attributes: unknown;
}

function fromColumns(c: FileColumns): FileRow {
  return {
    id: c.id,
    filename: c.filename,
    purpose: c.purpose,
    bytes: Number(c.bytes),
    createdAt: Number(c.created_at),
    expiresAt: c.expires_at === null ? null : Number(c.expires_at),
    mimeType: c.mime_type,
    sha256: c.sha256,
    storageKey: c.storage_key,
    status: c.status,
    ownerPrincipal: c.owner_principal,
    accessAttributes: c.access_attributes,
  };
}

/** expires_at <= now is expired; null, and Llama Stack's "no expiry" value, never expire. */
function visibleAt(now: number) {
  return {
    $or: [
      { expiresAt: null },
      { expiresAt: { $gt: now } },
      { expiresAt: raw(`"created_at" + ?`, [LLAMA_STACK_NO_EXPIRY_SECONDS]) },
    ],
  } satisfies FilterQuery<FileRow>;
}

export function toRow(r: FileRecord): FileRow {
  return {
    id: r.id,
    filename: r.filename,
    purpose: r.purpose,
    bytes: r.bytes,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    mimeType: r.mimeType,
    sha256: r.sha256,
    storageKey: r.storageKey,
    status: r.status,
    ownerPrincipal: r.ownerPrincipal,
    accessAttributes: r.accessAttributes ?? null,
  };
}

export function toRecord(row: FileRow): FileRecord {
  return {
    id: row.id,
    filename: row.filename,
    // Rows are only written through this repository or by Llama Stack, which both validate purposes.
    purpose: row.purpose as Purpose,
    bytes: Number(row.bytes),
    createdAt: Number(row.createdAt),
    expiresAt: readExpiresAt(row),
    mimeType: row.mimeType,
    sha256: row.sha256,
    storageKey: row.storageKey,
    status: "processed",
    ownerPrincipal: row.ownerPrincipal ?? null,
    ...withAttributes(row.accessAttributes),
  };
}

function readExpiresAt(row: FileRow): number | null {
  if (row.expiresAt == null) return null;
  const expiresAt = Number(row.expiresAt);
  return expiresAt === Number(row.createdAt) + LLAMA_STACK_NO_EXPIRY_SECONDS ? null : expiresAt;
}
