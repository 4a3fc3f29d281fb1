import type { FilterQuery, MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/knex";
import type { FileRecord, FileRepository, ListQuery } from "../files/ports.js";
import type { Purpose } from "../files/purposes.js";
import { DeletedFileEntity, FileEntity, type FileRow } from "./entity.js";

/** How long a deleted file's list position is remembered: longer than any walk through a listing. */
export const CURSOR_MEMORY_SECONDS = 7 * 24 * 3600;

/** FileRepository on MikroORM (SQLite or PostgreSQL); open.ts builds one. */
export class MikroOrmFileRepository implements FileRepository {
  constructor(private readonly orm: MikroORM<AbstractSqlDriver>) {}

  /** A fresh EntityManager per operation: no identity map shared between requests. */
  private em(): SqlEntityManager {
    return this.orm.em.fork() as SqlEntityManager;
  }

  async insert(record: FileRecord): Promise<void> {
    // A plain INSERT (no unit of work): a duplicate id rejects with UniqueConstraintViolationException.
    await this.em().insert(FileEntity, toRow(record));
  }

  async findById(id: string, now: number): Promise<FileRecord | undefined> {
    const row = await this.em().findOne(FileEntity, { $and: [{ id }, visibleAt(now)] });
    return row ? toRecord(row) : undefined;
  }

  async list(query: ListQuery): Promise<FileRecord[]> {
    if (query.limit <= 0) return [];
    const dir = query.order === "asc" ? "asc" : "desc";
    const qb = this.em().createQueryBuilder(FileEntity).select("*").where(visibleAt(query.now));
    if (query.purpose !== undefined) qb.andWhere({ purpose: query.purpose });
    if (query.after) {
      // Row-value comparison: "strictly after (c, i) in this order", i.e. for desc
      // created_at < c OR (created_at = c AND id < i). Both databases can start an index range
      // scan on (created_at, id) [or (purpose, created_at, id)] from it, unlike the OR form.
      const op = dir === "asc" ? ">" : "<";
      qb.andWhere(`("created_at", "id") ${op} (?, ?)`, [query.after.createdAt, query.after.id]);
    }
    qb.orderBy([{ createdAt: dir }, { id: dir }]).limit(query.limit);
    const rows = await qb.getResultList();
    return rows.map(toRecord);
  }

  async position(id: string): Promise<{ createdAt: number; id: string } | undefined> {
    const em = this.em();
    const row = (await em.findOne(FileEntity, { id }, { fields: ["createdAt"] })) ?? (await em.findOne(DeletedFileEntity, { id }));
    return row ? { createdAt: Number(row.createdAt), id } : undefined;
  }

  async delete(id: string, now: number): Promise<boolean> {
    return this.em().transactional(async (em) => {
      const row = await em.findOne(FileEntity, { id }, { fields: ["createdAt"] });
      // Of two racing deletes, the database lets one DELETE take the row; the other sees 0.
      if (!row || (await em.nativeDelete(FileEntity, { id })) === 0) return false;
      await em.insert(DeletedFileEntity, { id, createdAt: Number(row.createdAt), deletedAt: now });
      // Forgetting old positions here keeps the table small without a sweep of its own.
      await em.nativeDelete(DeletedFileEntity, { deletedAt: { $lt: now - CURSOR_MEMORY_SECONDS } });
      return true;
    });
  }

  async ping(): Promise<void> {
    await this.em().getConnection().execute("select 1");
  }

  async close(): Promise<void> {
    await this.orm.close(true);
  }
}

/** expires_at <= now is expired; null never expires. */
function visibleAt(now: number) {
  return { $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] } satisfies FilterQuery<FileRow>;
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
    expiresAt: row.expiresAt == null ? null : Number(row.expiresAt),
    mimeType: row.mimeType,
    sha256: row.sha256,
    storageKey: row.storageKey,
    status: "processed",
    ownerPrincipal: row.ownerPrincipal ?? null,
  };
}
