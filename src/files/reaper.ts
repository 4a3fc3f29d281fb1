import { isUnsupportedByStore } from "./errors.js";
import {
  systemClock,
  type Clock,
  type FileRecord,
  type FileRepository,
  type ObjectStore,
  type UploadRecord,
  type UploadRepository,
  type UploadStatus,
} from "./ports.js";

export interface ReaperOptions {
  files: FileRepository;
  uploads: UploadRepository;
  store: ObjectStore;
  clock?: Clock;
  /** The key prefix the services write under: an upload's parts live under `<prefix>uploads/<id>/`. */
  keyPrefix?: string;
  /** Seconds between passes; 0 means start() does nothing. */
  intervalSeconds: number;
  /** Most files, and most uploads, one pass claims. */
  batchSize: number;
  /** How long a claim holds: a reaper that dies mid-pass leaves its rows to others after this. */
  leaseSeconds?: number;
  events?: ReaperEvents;
}

/** What a pass did, for metrics and logs; every callback is optional. */
export interface ReaperEvents {
  fileReaped?(file: FileRecord): void;
  uploadExpired?(upload: UploadRecord): void;
  pass?(summary: ReapSummary): void;
  error?(err: unknown, context: ReapErrorContext): void;
}

export interface ReapErrorContext {
  step: "claim files" | "claim uploads" | "delete object" | "delete row" | "expire upload" | "remove parts" | "abort writes";
  fileId?: string;
  uploadId?: string;
  key?: string;
}

export interface ReapSummary {
  files: { claimed: number; reaped: number; failed: number };
  /** writesAborted: unfinished part writes (S3 multipart uploads) a crash left under an ended upload. */
  uploads: { claimed: number; expired: number; partsRemoved: number; writesAborted: number; failed: number };
}

export const DEFAULT_REAPER_LEASE_SECONDS = 300;
/** Items of one batch worked on at once. */
const CONCURRENCY = 8;
/** States in which an upload's parts are no longer wanted. */
const ENDED: ReadonlySet<UploadStatus> = new Set(["cancelled", "expired", "completed"]);

/**
 * Removes what has expired: each expired file's object and then its row, and each pending upload
 * past its expiry (marked expired) with its parts and unfinished part writes; also parts that a
 * crash left behind on an upload that has ended, and uploads a crash left "completing" (marked
 * expired once stale, see uploadLapsed). Rows are claimed with a lease before any work, so
 * replicas sharing one database split the work and each item is reaped once; a reaper that dies
 * leaves its claims to lapse and the next pass finishes the job (removing a missing object is not
 * an error).
 *
 * A row stays until its object is gone, so a failed object delete is retried on a later pass.
 * Nothing here throws: failures go to `events.error` and the next pass tries again.
 */
export class Reaper {
  private readonly clock: Clock;
  private readonly leaseSeconds: number;
  private readonly events: ReaperEvents;
  private timer: NodeJS.Timeout | undefined;
  /** Passes in progress, scheduled or called directly: stop() waits for them. */
  private readonly running = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(private readonly options: ReaperOptions) {
    this.clock = options.clock ?? systemClock;
    this.leaseSeconds = options.leaseSeconds ?? DEFAULT_REAPER_LEASE_SECONDS;
    this.events = options.events ?? {};
  }

  /** Runs a pass every intervalSeconds, the first one interval from now. */
  start(): void {
    if (this.options.intervalSeconds <= 0 || this.stopped || this.timer) return;
    this.schedule();
  }

  /** Stops scheduling passes and waits for the one in progress, which skips the items it has not begun. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.running);
  }

  /** One pass: a batch of expired files, then a batch of uploads. */
  runOnce(): Promise<ReapSummary> {
    const pass = this.pass();
    this.running.add(pass);
    return pass.finally(() => this.running.delete(pass));
  }

  private async pass(): Promise<ReapSummary> {
    const summary: ReapSummary = {
      files: { claimed: 0, reaped: 0, failed: 0 },
      uploads: { claimed: 0, expired: 0, partsRemoved: 0, writesAborted: 0, failed: 0 },
    };
    await this.reapFiles(summary);
    // Stopping: claiming uploads now would only leave claims to lapse.
    if (!this.stopped) await this.reapUploads(summary);
    this.report(() => this.events.pass?.(summary));
    return summary;
  }

  private schedule(delayMs = this.options.intervalSeconds * 1000): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // The next pass is timed from the end of this one, so passes never overlap. A full batch
      // means a backlog: the next pass starts at once instead of an interval later.
      let backlog = false;
      void this.runOnce()
        .then((s) => (backlog = s.files.claimed >= this.options.batchSize || s.uploads.claimed >= this.options.batchSize))
        .catch(() => {}) // runOnce reports its own failures
        .finally(() => {
          if (!this.stopped) this.schedule(backlog ? 0 : undefined);
        });
    }, delayMs);
    // A pending pass never keeps a process alive by itself.
    this.timer.unref();
  }

  private async reapFiles(summary: ReapSummary): Promise<void> {
    const now = this.clock.now();
    let claimed: FileRecord[];
    try {
      claimed = await this.options.files.claimExpired(now, this.options.batchSize, now + this.leaseSeconds);
    } catch (err) {
      this.fail(err, { step: "claim files" });
      return;
    }
    summary.files.claimed = claimed.length;
    await this.each(claimed, async (file) => {
      try {
        await this.options.store.delete(file.storageKey);
      } catch (err) {
        // The row stays, so a later pass (once the claim lapses) tries again: nothing is orphaned.
        summary.files.failed++;
        this.fail(err, { step: "delete object", fileId: file.id, key: file.storageKey });
        return;
      }
      try {
        // The repository's own delete, so `after` cursors naming the file keep their place.
        if (await this.options.files.delete(file.id, this.clock.now())) {
          summary.files.reaped++;
          this.report(() => this.events.fileReaped?.(file));
        }
      } catch (err) {
        summary.files.failed++;
        this.fail(err, { step: "delete row", fileId: file.id });
      }
    });
  }

  private async reapUploads(summary: ReapSummary): Promise<void> {
    const now = this.clock.now();
    let claimed: UploadRecord[];
    try {
      claimed = await this.options.uploads.claimUploadsToReap(now, this.options.batchSize, now + this.leaseSeconds);
    } catch (err) {
      this.fail(err, { step: "claim uploads" });
      return;
    }
    summary.uploads.claimed = claimed.length;
    await this.each(claimed, async (upload) => {
      const { uploads } = this.options;
      let status: UploadStatus | undefined = upload.status;
      try {
        if (status === "pending" || status === "completing") {
          // The same compare-and-set a request uses, so a complete or cancel racing this one is
          // never undone. A claimed "completing" upload is one a dead process left (uploadLapsed).
          if (await uploads.transition(upload.id, status, "expired")) {
            status = "expired";
            summary.uploads.expired++;
            this.report(() => this.events.uploadExpired?.(upload));
          } else {
            status = (await uploads.findUpload(upload.id))?.status;
          }
        }
      } catch (err) {
        summary.uploads.failed++;
        this.fail(err, { step: "expire upload", uploadId: upload.id });
        return;
      }
      if (status === undefined || !ENDED.has(status)) return;
      try {
        for (const part of await uploads.listParts(upload.id)) {
          if (this.stopped) return;
          try {
            await this.options.store.delete(part.storageKey);
          } catch (err) {
            // Object first, row last: the row is how a later pass finds the object again.
            summary.uploads.failed++;
            this.fail(err, { step: "delete object", uploadId: upload.id, key: part.storageKey });
            continue;
          }
          await uploads.deletePart(part.id);
          summary.uploads.partsRemoved++;
        }
      } catch (err) {
        summary.uploads.failed++;
        this.fail(err, { step: "remove parts", uploadId: upload.id });
      }
      await this.abortUnfinishedWrites(upload.id, summary);
    });
  }

  /**
   * A part whose write was cut off (the process died mid-PUT) has no row, only an unfinished write
   * in the store, which S3 keeps (and bills) until aborted. Keys as UploadsService builds them.
   */
  private async abortUnfinishedWrites(uploadId: string, summary: ReapSummary): Promise<void> {
    const prefix = `${this.options.keyPrefix ?? ""}uploads/${uploadId}/`;
    try {
      for await (const write of this.options.store.listIncomplete(prefix)) {
        // Writes with no key (a local store's temp files) cannot be tied to this upload: reconcile's job.
        if (write.key === null || !write.key.startsWith(prefix)) continue;
        await this.options.store.abortIncomplete(write);
        summary.uploads.writesAborted++;
      }
    } catch (err) {
      // A store that cannot list or abort unfinished writes said so once; its lifecycle rules clean up.
      if (isUnsupportedByStore(err)) return;
      summary.uploads.failed++;
      this.fail(err, { step: "abort writes", uploadId });
    }
  }

  /** Runs `work` on each item, a few at a time; items not yet begun are skipped once stop() is called. */
  private async each<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length && !this.stopped) await work(items[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
  }

  private fail(err: unknown, context: ReapErrorContext): void {
    this.report(() => this.events.error?.(err, context));
  }

  /** A throwing callback (a logger, a metric) must not stop the reaper. */
  private report(callback: () => void): void {
    try {
      callback();
    } catch {
      /* ignored: reporting is best effort */
    }
  }
}
