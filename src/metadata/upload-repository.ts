import type { MikroORM } from "@mikro-orm/core";
import type { AbstractSqlDriver, SqlEntityManager } from "@mikro-orm/knex";
import { STALE_COMPLETING_SECONDS, type PartKeyRow, type UploadPartRecord, type UploadRecord, type UploadRepository, type UploadStatus } from "../files/ports.js";
import type { UploadPurpose } from "../files/purposes.js";
import { attributesToColumn, withAttributes } from "./access-sql.js";
import { claimIds, skipLocked } from "./repository.js";
import { UPLOAD_PARTS_TABLE, UPLOADS_TABLE, UploadEntity, UploadPartEntity, type UploadRow } from "./upload-entities.js";

/** UploadRepository on MikroORM; shares the ORM (and its pool) with the files repository. */
export class MikroOrmUploadRepository implements UploadRepository {
  constructor(private readonly orm: MikroORM<AbstractSqlDriver>) {}

  private em(): SqlEntityManager {
    return this.orm.em.fork() as SqlEntityManager;
  }

  async insertUpload(upload: UploadRecord): Promise<void> {
    await this.em().insert(UploadEntity, { ...upload, accessAttributes: attributesToColumn(upload.accessAttributes) });
  }

  async findUpload(id: string): Promise<UploadRecord | undefined> {
    const row = await this.em().findOne(UploadEntity, { id });
    return row ? toUpload(row) : undefined;
  }

  async transition(id: string, from: UploadStatus, to: UploadStatus, fileId?: string): Promise<boolean> {
    // One conditional UPDATE: the database decides which of two racing requests wins.
    const changes: Partial<UploadRow> = fileId === undefined ? { status: to } : { status: to, fileId };
    const updated = await this.em().nativeUpdate(UploadEntity, { id, status: from }, changes);
    return updated === 1;
  }

  async insertPart(part: UploadPartRecord): Promise<void> {
    await this.em().insert(UploadPartEntity, { ...part });
  }

  async listParts(uploadId: string): Promise<UploadPartRecord[]> {
    const rows = await this.em().find(UploadPartEntity, { uploadId }, { orderBy: { createdAt: "asc", id: "asc" } });
    return rows.map((row) => ({ ...row, bytes: Number(row.bytes), createdAt: Number(row.createdAt) }));
  }

  async deletePart(partId: string): Promise<void> {
    await this.em().nativeDelete(UploadPartEntity, { id: partId });
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
    ...withAttributes(row.accessAttributes),
  };
}
