import type { UploadPartRecord, UploadRecord, UploadRepository, UploadStatus } from "../../src/files/ports.js";

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

  async deletePart(partId: string): Promise<void> {
    this.parts.delete(partId);
  }
}
