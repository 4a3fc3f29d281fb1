import type { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/knex";
import { STALE_COMPLETING_SECONDS, type PartKeyRow, type UploadPartRecord, type UploadRecord, type UploadRepository, type UploadStatus } from "../files/ports.js";
import type { UploadPurpose } from "../files/purposes.js";
import { withAttributes } from "./access-sql.js";
import { claimIds, skipLocked } from "./repository.js";
import { UPLOAD_PARTS_TABLE, UPLOADS_TABLE, UploadEntity, UploadPartEntity, type UploadRow } from "./upload-entities.js";

/** UploadRepository on MikroORM; shares the ORM (and its pool) with the files repository. */
export class MikroOrmUploadRepository implements UploadRepository {
  constructor(private readonly orm: MikroORM<AbstractSqlDriver>) {}

  private em(): SqlEntityManager {
    return this.orm.em.fork() as SqlEntityManager;
  }

  async insertUpload(upload: UploadRecord): Promise<void> {
    // The attributes as an object: the json column serializes it (given the JSON text, it encoded it twice).
    await this.em().insert(UploadEntity, { ...upload, accessAttributes: structuredClone(upload.accessAttributes ?? null) });
  }

  // The statements every part makes (the upload read twice, the count, the insert, and at the end
  // the delete) as plain SQL, like the files repository's hot paths: through the ORM they were a
  // tenth of a part's server CPU (BENCHMARKS.md, "Client libraries").

  async findUpload(id: string): Promise<UploadRecord | undefined> {
    const rows = await this.execute<UploadColumns>(`select ${UPLOAD_COLUMNS} from "${UPLOADS_TABLE}" where "id" = ?`, [id]);
    return rows[0] ? toUpload(fromUploadColumns(rows[0])) : undefined;
  }

  async transition(id: string, from: UploadStatus, to: UploadStatus, fileId?: string): Promise<boolean> {
    // One conditional UPDATE: the database decides which of two racing requests wins.
    const changes: Partial<UploadRow> = fileId === undefined ? { status: to } : { status: to, fileId };
    const updated = await this.em().nativeUpdate(UploadEntity, { id, status: from }, changes);
    return updated === 1;
  }

  async insertPart(part: UploadPartRecord): Promise<void> {
    await this.orm.em
      .getConnection()
      .execute(
        `insert into "${UPLOAD_PARTS_TABLE}" ("id", "upload_id", "bytes", "sha256", "storage_key", "created_at") values (?, ?, ?, ?, ?, ?)`,
        [part.id, part.uploadId, part.bytes, part.sha256, part.storageKey, part.createdAt],
        "run",
      );
  }

  async listParts(uploadId: string): Promise<UploadPartRecord[]> {
    const rows = await this.execute<PartColumns>(
      `select "id", "upload_id", "bytes", "sha256", "storage_key", "created_at" from "${UPLOAD_PARTS_TABLE}"
       where "upload_id" = ? order by "created_at", "id"`,
      [uploadId],
    );
    return rows.map((r) => ({
      id: r.id,
      uploadId: r.upload_id,
      bytes: Number(r.bytes),
      sha256: r.sha256,
      storageKey: r.storage_key,
      createdAt: Number(r.created_at),
    }));
  }

  async countParts(uploadId: string): Promise<number> {
    const rows = await this.execute<{ n: number | string }>(`select count(*) as "n" from "${UPLOAD_PARTS_TABLE}" where "upload_id" = ?`, [uploadId]);
    return Number(rows[0]?.n ?? 0);
  }

  async deletePart(partId: string): Promise<void> {
    await this.orm.em.getConnection().execute(`delete from "${UPLOAD_PARTS_TABLE}" where "id" = ?`, [partId], "run");
  }

  async deleteParts(partIds: readonly string[]): Promise<void> {
    // Chunks well under either database's limit on bound parameters.
    for (let i = 0; i < partIds.length; i += 500) {
      const chunk = partIds.slice(i, i + 500);
      await this.orm.em
        .getConnection()
        .execute(`delete from "${UPLOAD_PARTS_TABLE}" where "id" in (${chunk.map(() => "?").join(", ")})`, [...chunk], "run");
    }
  }

  private execute<T>(sql: string, params: unknown[]): Promise<T[]> {
    return this.orm.em.getConnection().execute<T[]>(sql, params as never[]);
  }

  async listPartKeys(afterId: string | undefined, limit: number): Promise<PartKeyRow[]> {
    if (limit <= 0) return [];
    const rows = await this.em().find(
      UploadPartEntity,
      afterId === undefined ? {} : { id: { $gt: afterId } },
      { fields: ["id", "uploadId", "storageKey"], orderBy: { id: "asc" }, limit },
    );
    return rows.map((row) => ({ id: row.id, uploadId: row.uploadId, storageKey: row.storageKey }));
  }

  async claimUploadsToReap(now: number, limit: number, claimUntil: number): Promise<UploadRecord[]> {
    if (limit <= 0) return [];
    const em = this.em();
    // Pending uploads past expiry, and completing ones long past it, come through the
    // (status, expires_at) index; ended uploads with parts are found from the parts table, which
    // holds only uploads in flight.
    const ids = await claimIds(
      em,
      `update "${UPLOADS_TABLE}" set "reap_claimed_until" = ? where "id" in (
        select "id" from "${UPLOADS_TABLE}"
        where ("reap_claimed_until" is null or "reap_claimed_until" < ?)
          and (("status" = 'pending' and "expires_at" <= ?)
            or ("status" = 'completing' and "expires_at" <= ?)
            or ("status" in ('cancelled', 'expired', 'completed') and "id" in (select "upload_id" from "${UPLOAD_PARTS_TABLE}")))
        order by "expires_at", "id" limit ?${skipLocked(em)}
      ) and ("reap_claimed_until" is null or "reap_claimed_until" < ?) returning "id"`,
      [claimUntil, now, now, now - STALE_COMPLETING_SECONDS, limit, now],
    );
    if (ids.length === 0) return [];
    const rows = await em.find(UploadEntity, { id: { $in: ids } }, { orderBy: { expiresAt: "asc", id: "asc" } });
    return rows.map(toUpload);
  }
}

const UPLOAD_COLUMNS = `"id", "filename", "purpose", "bytes", "mime_type", "created_at", "expires_at", "file_expires_after_seconds",
  "status", "file_id", "owner_principal", "access_attributes"`;

/** A row as the database names its columns (bigints arrive as strings from PostgreSQL). */
interface UploadColumns {
  id: string;
  filename: string;
  purpose: string;
  bytes: number | string;
  mime_type: string;
  created_at: number | string;
  expires_at: number | string;
  file_expires_after_seconds: number | string | null;
  status: string;
  file_id: string | null;
  owner_principal: string | null;
  access_attributes: unknown;
}

interface PartColumns {
  id: string;
  upload_id: string;
  bytes: number | string;
  sha256: string;
  storage_key: string;
  created_at: number | string;
}

function fromUploadColumns(c: UploadColumns): UploadRow {
  return {
    id: c.id,
    filename: c.filename,
    purpose: c.purpose,
    bytes: Number(c.bytes),
    mimeType: c.mime_type,
    createdAt: Number(c.created_at),
    expiresAt: Number(c.expires_at),
    fileExpiresAfterSeconds: c.file_expires_after_seconds === null ? null : Number(c.file_expires_after_seconds),
    status: c.status,
    fileId: c.file_id,
    ownerPrincipal: c.owner_principal,
    accessAttributes: c.access_attributes,
  };
}

function toUpload(row: UploadRow): UploadRecord {
  return {
    id: row.id,
    filename: row.filename,
    // Rows are only written by this service, which validates both.
    purpose: row.purpose as UploadPurpose,
    bytes: Number(row.bytes),
    mimeType: row.mimeType,
    createdAt: Number(row.createdAt),
    expiresAt: Number(row.expiresAt),
    fileExpiresAfterSeconds: row.fileExpiresAfterSeconds == null ? null : Number(row.fileExpiresAfterSeconds),
    status: row.status as UploadStatus,
    fileId: row.fileId ?? null,
    ownerPrincipal: row.ownerPrincipal ?? null,
    ...withAttributes(row.accessAttributes, true),
  };
}
