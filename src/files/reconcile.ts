import { isUnsupportedByStore } from "./errors.js";
import { isFileId, isPartId, isUploadId } from "./ids.js";
import {
  systemClock,
  type Clock,
  type FileRepository,
  type IncompleteWrite,
  type ObjectStore,
  type StoredObject,
  type UploadRepository,
} from "./ports.js";

/** An upload in flight looks like a crash's leftovers for a moment; repairs leave anything younger alone. */
export const DEFAULT_GRACE_SECONDS = 3600;
/** Rows read per query while walking the metadata. */
const PAGE_SIZE = 1000;
/** Repairs in flight at once. */
const REPAIR_CONCURRENCY = 8;

export interface ReconcileOptions {
  store: ObjectStore;
  files: FileRepository;
  uploads: UploadRepository;
  /** The service's key prefix; "" is the bucket root (Llama Stack's layout). */
  keyPrefix?: string;
  clock?: Clock;
  graceSeconds?: number;
}

/** An object or unfinished write, and whether it is still too young to be touched. */
export type Aged<T> = T & { recent: boolean };

export interface ReconcileReport {
  keyPrefix: string;
  /** Unix seconds. */
  checkedAt: number;
  graceSeconds: number;
  /** Objects listed under the prefix. */
  objects: number;
  fileRows: number;
  partRows: number;
  /** Objects at keys shaped like ours (a file id, an upload part) that no file or part row names. */
  orphanObjects: Aged<StoredObject>[];
  /** File rows (expired ones included) whose object is not in the store. */
  missingObjects: { id: string; storageKey: string }[];
  /** Writes that never finished (multipart uploads left by a crash, local temp files). */
  incompleteWrites: Aged<IncompleteWrite>[];
  /** Keys under the prefix that are neither ours nor named by a row: reported, never touched. */
  unknownObjects: StoredObject[];
  /** Unfinished writes at such keys: likewise left alone. */
  unknownIncompleteWrites: IncompleteWrite[];
  /** File rows whose object lies outside the prefix, so outside what was listed: not checked. */
  rowsOutsidePrefix: number;
  /** Set when the store cannot list unfinished writes at all: why, and what to do instead. */
  incompleteWritesUnlisted?: string;
}

export interface RepairResult {
  deletedObjects: string[];
  abortedWrites: IncompleteWrite[];
  removedRows: string[];
  /** Problems left for a later run because they are younger than the grace period. */
  deferred: number;
  /** Problems that were gone when re-checked just before the repair (a row or object appeared meanwhile). */
  resolvedMeanwhile: number;
  failures: { target: string; error: string }[];
}

/** Problems a report holds: what --dry-run counts, whatever their age. */
export function problemCount(report: ReconcileReport): number {
  return report.orphanObjects.length + report.missingObjects.length + report.incompleteWrites.length + (report.incompleteWritesUnlisted ? 1 : 0);
}

/** True when a repair left nothing it found unrepaired. */
export function repairedAll(result: RepairResult): boolean {
  return result.deferred === 0 && result.failures.length === 0;
}

/**
 * Compares the object store, under the key prefix, with the metadata, and repairs what a crash or
 * a failed clean-up left behind. It only ever deletes objects at keys shaped like the ones this
 * service writes (`<prefix><file id>`, `<prefix>uploads/<upload id>/<part id>`), so objects of
 * other tools sharing the bucket or the prefix stay untouched.
 */
export class Reconciler {
  private readonly keyPrefix: string;
  private readonly clock: Clock;
  private readonly graceSeconds: number;

  constructor(private readonly options: ReconcileOptions) {
    this.keyPrefix = options.keyPrefix ?? "";
    this.clock = options.clock ?? systemClock;
    this.graceSeconds = options.graceSeconds ?? DEFAULT_GRACE_SECONDS;
    if (!Number.isSafeInteger(this.graceSeconds) || this.graceSeconds < 0) {
      throw new RangeError(`graceSeconds must be a non-negative integer, got ${this.graceSeconds}`);
    }
  }

  /** Reads only; nothing is changed. */
  async scan(): Promise<ReconcileReport> {
    const { store } = this.options;
    const now = this.clock.now();
    // The store is listed before the metadata is read: a file committed meanwhile then has its row
    // seen, and is not taken for an orphan (its object was written before its row).
    const objects: StoredObject[] = [];
    for await (const object of store.list(this.keyPrefix)) objects.push(object);
    const writes: IncompleteWrite[] = [];
    let incompleteWritesUnlisted: string | undefined;
    try {
      for await (const write of store.listIncomplete(this.keyPrefix)) writes.push(write);
    } catch (err) {
      // Say so, and check everything else: the orphan objects are the bulk of what is wasted.
      if (!isUnsupportedByStore(err)) throw err;
      incompleteWritesUnlisted = err.message;
      writes.length = 0;
    }

    const fileRows = await this.fileRows();
    const known = new Set(fileRows.map((row) => row.storageKey));
    let partRows = 0;
    for await (const part of walk((after) => this.options.uploads.listPartKeys(after, PAGE_SIZE))) {
      known.add(part.storageKey);
      partRows++;
    }

    const report: ReconcileReport = {
      keyPrefix: this.keyPrefix,
      checkedAt: now,
      graceSeconds: this.graceSeconds,
      objects: objects.length,
      fileRows: fileRows.length,
      partRows,
      orphanObjects: [],
      missingObjects: [],
      incompleteWrites: [],
      unknownObjects: [],
      unknownIncompleteWrites: [],
      rowsOutsidePrefix: 0,
      ...(incompleteWritesUnlisted !== undefined && { incompleteWritesUnlisted }),
    };
    for (const object of objects) {
      if (known.has(object.key)) continue;
      if (this.shape(object.key)) report.orphanObjects.push({ ...object, recent: this.isRecent(object.lastModified, now) });
      else report.unknownObjects.push(object);
    }
    for (const write of writes) {
      if (write.key === null || this.shape(write.key)) {
        report.incompleteWrites.push({ ...write, recent: this.isRecent(write.lastModified, now) });
      } else {
        report.unknownIncompleteWrites.push(write);
      }
    }
    const stored = new Set(objects.map((o) => o.key));
    for (const row of fileRows) {
      if (!row.storageKey.startsWith(this.keyPrefix)) {
        report.rowsOutsidePrefix++;
      } else if (!stored.has(row.storageKey) && (await store.head(row.storageKey)) === undefined) {
        // Confirmed with a HEAD: the row may be newer than the listing, its object with it.
        report.missingObjects.push({ id: row.id, storageKey: row.storageKey });
      }
    }
    return report;
  }

  /**
   * Deletes orphan objects and aborts unfinished writes older than the grace period, and removes
   * the rows whose objects are gone. Each is checked again just before it is changed.
   */
  async repair(report: ReconcileReport): Promise<RepairResult> {
    const { store, files } = this.options;
    const now = this.clock.now();
    const result: RepairResult = { deletedObjects: [], abortedWrites: [], removedRows: [], deferred: 0, resolvedMeanwhile: 0, failures: [] };
    const attempt = async (target: string, work: () => Promise<void>) => {
      try {
        await work();
      } catch (err) {
        result.failures.push({ target, error: err instanceof Error ? err.message : String(err) });
      }
    };

    await forEachLimit(report.orphanObjects, async (object) => {
      if (this.isRecent(object.lastModified, now)) return void result.deferred++;
      await attempt(object.key, async () => {
        if (await this.stillOrphan(object.key)) {
          await store.delete(object.key);
          result.deletedObjects.push(object.key);
        } else {
          result.resolvedMeanwhile++;
        }
      });
    });
    await forEachLimit(report.incompleteWrites, async (write) => {
      if (this.isRecent(write.lastModified, now)) return void result.deferred++;
      await attempt(write.key ?? write.id, async () => {
        await store.abortIncomplete(write);
        result.abortedWrites.push(write);
      });
    });
    await forEachLimit(report.missingObjects, async (row) => {
      await attempt(row.id, async () => {
        if ((await store.head(row.storageKey)) !== undefined) return void result.resolvedMeanwhile++;
        // The repository's own delete, so the file's list position is remembered like any deletion's.
        if (await files.delete(row.id, now)) result.removedRows.push(row.id);
        else result.resolvedMeanwhile++;
      });
    });
    return result;
  }

  /** The id a key names, when it is shaped like one of ours under the prefix. */
  private shape(key: string): { fileId: string } | { uploadId: string; partId: string } | undefined {
    if (!key.startsWith(this.keyPrefix)) return undefined;
    const rest = key.slice(this.keyPrefix.length);
    if (isFileId(rest)) return { fileId: rest };
    const part = /^uploads\/([^/]+)\/([^/]+)$/.exec(rest);
    if (part && isUploadId(part[1]!) && isPartId(part[2]!)) return { uploadId: part[1]!, partId: part[2]! };
    return undefined;
  }

  /** Re-reads the metadata for one key: a row committed since the scan makes it no orphan. */
  private async stillOrphan(key: string): Promise<boolean> {
    const shape = this.shape(key);
    if (!shape) return false;
    if ("fileId" in shape) {
      // now = 0: a row expired long ago still names its object (the reaper will remove both).
      return (await this.options.files.findById(shape.fileId, 0)) === undefined;
    }
    const parts = await this.options.uploads.listParts(shape.uploadId);
    return !parts.some((p) => p.id === shape.partId || p.storageKey === key);
  }

  private async fileRows(): Promise<{ id: string; storageKey: string }[]> {
    const rows: { id: string; storageKey: string }[] = [];
    for await (const row of walk((after) => this.options.files.listStorageKeys(after, PAGE_SIZE))) rows.push(row);
    return rows;
  }

  private isRecent(lastModified: number, now: number): boolean {
    return now - lastModified < this.graceSeconds;
  }
}

/** Follows an id-keyset-paged query to its end. */
async function* walk<R extends { id: string }>(page: (afterId: string | undefined) => Promise<R[]>): AsyncGenerator<R> {
  let after: string | undefined;
  for (;;) {
    const rows = await page(after);
    yield* rows;
    if (rows.length < PAGE_SIZE) return;
    after = rows.at(-1)!.id;
  }
}

async function forEachLimit<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(REPAIR_CONCURRENCY, items.length) }, worker));
}
