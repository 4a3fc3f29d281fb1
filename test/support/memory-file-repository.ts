import type { Attributes } from "../../src/files/access-policy.js";
import type { FilePosition, FileRecord, FileRepository, ListQuery, StorageKeyRow } from "../../src/files/ports.js";
import { rowMatches } from "../../src/files/row-predicate.js";

/** An in-memory FileRepository for fast core tests; it passes the same contract suite as the SQL one. */
export class MemoryFileRepository implements FileRepository {
  readonly rows = new Map<string, FileRecord>();
  /** Positions of deleted files, for `after` cursors. */
  readonly deleted = new Map<string, { createdAt: number; ownerPrincipal: string | null; accessAttributes?: Attributes | null }>();
  /** When set, the next insert fails with this error (fault injection). */
  failNextInsert: Error | undefined;

  async insert(record: FileRecord): Promise<void> {
    if (this.failNextInsert) {
      const err = this.failNextInsert;
      this.failNextInsert = undefined;
      throw err;
    }
    if (this.rows.has(record.id)) throw new Error(`duplicate id ${record.id}`);
    this.rows.set(record.id, { ...record });
  }

  async findById(id: string, now: number): Promise<FileRecord | undefined> {
    const row = this.rows.get(id);
    return row && visible(row, now) ? { ...row } : undefined;
  }

  async list(query: ListQuery): Promise<FileRecord[]> {
    const sign = query.order === "asc" ? 1 : -1;
    const compare = (a: { createdAt: number; id: string }, b: { createdAt: number; id: string }) =>
      sign * (a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return [...this.rows.values()]
      .filter((row) => visible(row, query.now))
      .filter((row) => query.purpose === undefined || row.purpose === query.purpose)
      .filter((row) => query.owner === undefined || row.ownerPrincipal === query.owner)
      .filter((row) => query.visible === undefined || rowMatches(query.visible, row))
      .filter((row) => query.after === undefined || compare(row, query.after) > 0)
      .sort(compare)
      .slice(0, query.limit)
      .map((row) => ({ ...row }));
  }

  async position(id: string): Promise<FilePosition | undefined> {
    const row = this.rows.get(id) ?? this.deleted.get(id);
    return row
      ? { createdAt: row.createdAt, id, ownerPrincipal: row.ownerPrincipal, ...(row.accessAttributes && { accessAttributes: row.accessAttributes }) }
      : undefined;
  }

  async delete(id: string, _now: number): Promise<boolean> {
    const row = this.rows.get(id);
    if (!row) return false;
    this.rows.delete(id);
    this.claimedUntil.delete(id);
    this.deleted.set(id, { createdAt: row.createdAt, ownerPrincipal: row.ownerPrincipal, accessAttributes: row.accessAttributes ?? null });
    return true;
  }

  /** Reaper claims: id → the unix second the claim holds until. */
  readonly claimedUntil = new Map<string, number>();

  async claimExpired(now: number, limit: number, claimUntil: number): Promise<FileRecord[]> {
    // No await between choosing and marking: like the SQL's single UPDATE, two callers never share a row.
    const claimed = [...this.rows.values()]
      .filter((row) => row.expiresAt !== null && row.expiresAt <= now)
      .filter((row) => (this.claimedUntil.get(row.id) ?? -Infinity) < now)
      .sort((a, b) => a.expiresAt! - b.expiresAt! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(0, limit));
    for (const row of claimed) this.claimedUntil.set(row.id, claimUntil);
    return claimed.map((row) => ({ ...row }));
  }

  async listStorageKeys(afterId: string | undefined, limit: number): Promise<StorageKeyRow[]> {
    return [...this.rows.values()]
      .filter((row) => afterId === undefined || row.id > afterId)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, Math.max(0, limit))
      .map((row) => ({ id: row.id, storageKey: row.storageKey }));
  }

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

function visible(row: FileRecord, now: number): boolean {
  return row.expiresAt === null || row.expiresAt > now;
}
