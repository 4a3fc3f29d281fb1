import { FilesError } from "./errors.js";

export interface UploadSlotLimits {
  /** Uploads in flight at once, over all callers; undefined: no limit. */
  global?: number;
  /** Uploads in flight at once for one principal; undefined: no limit. */
  perPrincipal?: number;
}

/**
 * Counts uploads in flight, so one caller (or a crowd) cannot hold every socket, buffer and S3
 * part at once. A slot is taken before the first byte is read and given back when the upload ends,
 * whichever way it ends; a caller over its share is refused at once rather than queued, since a
 * queued upload still holds its connection.
 */
export class UploadSlots {
  private total = 0;
  private readonly byPrincipal = new Map<string, number>();

  constructor(private readonly limits: UploadSlotLimits = {}) {}

  /** Takes a slot for `principal` (null: unauthenticated), or throws `resource_exhausted`. Call the result once to release it. */
  acquire(principal: string | null): () => void {
    const key = principal ?? "";
    const mine = this.byPrincipal.get(key) ?? 0;
    if (this.limits.perPrincipal !== undefined && mine >= this.limits.perPrincipal) {
      throw new FilesError(
        "resource_exhausted",
        `Too many uploads in progress for this caller (at most ${this.limits.perPrincipal} at once); wait for one to finish`,
      );
    }
    if (this.limits.global !== undefined && this.total >= this.limits.global) {
      throw new FilesError("resource_exhausted", `The server is handling its maximum of ${this.limits.global} uploads; try again shortly`);
    }
    this.total++;
    this.byPrincipal.set(key, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.byPrincipal.get(key) ?? 1) - 1;
      if (left === 0) this.byPrincipal.delete(key);
      else this.byPrincipal.set(key, left);
    };
  }

  get inFlight(): number {
    return this.total;
  }
}
