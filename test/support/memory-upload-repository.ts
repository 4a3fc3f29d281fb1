import { uploadLapsed, type PartKeyRow, type UploadPartRecord, type UploadRecord, type UploadRepository, type UploadStatus } from "../../src/files/ports.js";

/** An in-memory UploadRepository for fast core tests; it passes the same contract suite as the SQL one. */
export class MemoryUploadRepository implements UploadRepository {
  readonly uploads = new Map<string, UploadRecord>();
  readonly parts = new Map<string, UploadPartRecord>();

  async insertUpload(upload: UploadRecord): Promise<void> {
    if (this.uploads.has(upload.id)) throw new Error(`duplicate upload id ${upload.id}`);
    this.uploads.set(upload.id, { ...upload });
  }

  async findUpload(id: string): Promise<UploadRecord | undefined> {
    const row = this.uploads.get(id);
    return row && { ...row };
  }

  async transition(id: string, from: UploadStatus, to: UploadStatus, fileId?: string): Promise<boolean> {
    // Check and write with no await in between: like the SQL's conditional UPDATE, one racer wins.
    const row = this.uploads.get(id);
    if (!row || row.status !== from) return false;
    row.status = to;
    if (fileId !== undefined) row.fileId = fileId;
    return true;
  }

  async insertPart(part: UploadPartRecord): Promise<void> {
    if (this.parts.has(part.id)) throw new Error(`duplicate part id ${part.id}`);
    this.parts.set(part.id, { ...part });
  }

  /** Ordered by (createdAt, id), as the SQL repository returns them. */
  async listParts(uploadId: string): Promise<UploadPartRecord[]> {
    return [...this.parts.values()]
      .filter((p) => p.uploadId === uploadId)
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((p) => ({ ...p }));
  }

  async countParts(uploadId: string): Promise<number> {
    return [...this.parts.values()].filter((p) => p.uploadId === uploadId).length;
  }

  async deletePart(partId: string): Promise<void> {
    this.parts.delete(partId);
  }

  async deleteParts(partIds: readonly string[]): Promise<void> {
    for (const id of partIds) this.parts.delete(id);
  }

  async listPartKeys(afterId: string | undefined, limit: number): Promise<PartKeyRow[]> {
    return [...this.parts.values()]
      .filter((p) => afterId === undefined || p.id > afterId)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(0, limit))
      .map((p) => ({ id: p.id, uploadId: p.uploadId, storageKey: p.storageKey }));
  }

  /** Reaper claims: upload id → the unix second the claim holds until. */
  readonly claimedUntil = new Map<string, number>();

  async claimUploadsToReap(now: number, limit: number, claimUntil: number): Promise<UploadRecord[]> {
    const withParts = new Set([...this.parts.values()].map((p) => p.uploadId));
    const ended: ReadonlySet<UploadStatus> = new Set(["cancelled", "expired", "completed"]);
    const claimed = [...this.uploads.values()]
      .filter((u) => (this.claimedUntil.get(u.id) ?? -Infinity) < now)
      .filter((u) => uploadLapsed(u, now) || (ended.has(u.status) && withParts.has(u.id)))
      .sort((a, b) => a.expiresAt - b.expiresAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(0, limit));
    for (const u of claimed) this.claimedUntil.set(u.id, claimUntil);
    return claimed.map((u) => ({ ...u }));
  }
}
