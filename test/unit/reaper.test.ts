import { beforeEach, describe, expect, it, vi } from "vitest";
import { defaultTtlLookup } from "../../src/files/default-ttl.js";
import { FilesService } from "../../src/files/files-service.js";
import type { Clock, FileRecord, UploadPartRecord } from "../../src/files/ports.js";
import { Reaper, type ReapErrorContext, type ReaperOptions } from "../../src/files/reaper.js";
import { UploadsService } from "../../src/files/uploads-service.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { MemoryUploadRepository } from "../support/memory-upload-repository.js";
import { bodyOf } from "../support/test-helpers.js";

const T0 = 1_700_000_000;

describe("Reaper (in-memory adapters, fake clock)", () => {
  let store: MemoryObjectStore;
  let fileRepo: MemoryFileRepository;
  let uploadRepo: MemoryUploadRepository;
  let clock: Clock & { t: number };
  let files: FilesService;
  let uploads: UploadsService;
  let errors: { err: unknown; context: ReapErrorContext }[];
  let reapedFiles: string[];
  let expiredUploads: string[];

  beforeEach(() => {
    store = new MemoryObjectStore();
    fileRepo = new MemoryFileRepository();
    uploadRepo = new MemoryUploadRepository();
    clock = { t: T0, now: () => clock.t };
    files = new FilesService({ store, repository: fileRepo, clock, maxFileBytes: 1_000_000, defaultTtlSeconds: defaultTtlLookup() });
    uploads = new UploadsService({ files, store, repository: uploadRepo, clock, maxUploadBytes: 1_000_000, maxPartBytes: 100_000 });
    errors = [];
    reapedFiles = [];
    expiredUploads = [];
  });

  function reaper(overrides: Partial<ReaperOptions> = {}): Reaper {
    return new Reaper({
      files: fileRepo,
      uploads: uploadRepo,
      store,
      clock,
      intervalSeconds: 0,
      batchSize: 100,
      events: {
        fileReaped: (f) => reapedFiles.push(f.id),
        uploadExpired: (u) => expiredUploads.push(u.id),
        error: (err, context) => errors.push({ err, context }),
      },
      ...overrides,
    });
  }

  const upload = (purpose: string, expiresAfterSeconds?: number) =>
    files.upload({ filename: "f.txt", purpose, expiresAfterSeconds }, bodyOf(`content of a ${purpose} file`));

  it("drains a backlog pass after pass, without waiting an interval between full batches", async () => {
    for (let i = 0; i < 7; i++) await upload("assistants", 3600);
    clock.t += 3600;
    const r = reaper({ intervalSeconds: 0.5, batchSize: 2 });
    const started = Date.now();
    r.start();
    // Four passes (2+2+2+1) an interval apart would take 2 s; full batches chain at once, so the
    // backlog is gone soon after the first interval.
    await vi.waitFor(() => expect(reapedFiles).toHaveLength(7), { timeout: 5_000, interval: 5 });
    await r.stop();
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(fileRepo.rows.size).toBe(0);
  });

  it("removes each expired file's object, then its row, and leaves unexpired files alone", async () => {
    const short = await upload("assistants", 3600);
    const batch = await upload("batch"); // the built-in default: 30 days
    const forever = await upload("user_data");
    expect(batch.expiresAt).toBe(T0 + 2_592_000);
    expect(forever.expiresAt).toBeNull();

    // Before anything expires, a pass does nothing.
    expect((await reaper().runOnce()).files).toEqual({ claimed: 0, reaped: 0, failed: 0 });
    expect(store.keys()).toHaveLength(3);

    clock.t = T0 + 3600; // `short` expires at exactly this second
    const summary = await reaper().runOnce();
    expect(summary.files).toEqual({ claimed: 1, reaped: 1, failed: 0 });
    expect(reapedFiles).toEqual([short.id]);
    expect(store.deletedKeys).toEqual([short.storageKey]);
    expect(fileRepo.rows.has(short.id)).toBe(false);
    expect(store.keys()).toEqual([batch.storageKey, forever.storageKey].sort());
    // The reaper used the repository's delete: an `after` cursor naming the file still works.
    await expect(files.list({ after: short.id })).resolves.toMatchObject({ data: expect.any(Array) });

    clock.t = T0 + 2_592_000;
    await reaper().runOnce();
    expect(reapedFiles).toEqual([short.id, batch.id]);
    expect(store.keys()).toEqual([forever.storageKey]);
    expect([...fileRepo.rows.keys()]).toEqual([forever.id]);
    expect(errors).toEqual([]);
  });

  it("deletes the object before the row", async () => {
    const file = await upload("assistants", 3600);
    const order: string[] = [];
    const realDelete = fileRepo.delete.bind(fileRepo);
    fileRepo.delete = async (id, now) => {
      order.push(`row ${id} (object there: ${store.bytesOf(file.storageKey) !== undefined})`);
      return realDelete(id, now);
    };
    clock.t = T0 + 3600;
    await reaper().runOnce();
    expect(order).toEqual([`row ${file.id} (object there: false)`]);
  });

  it("takes at most batchSize files per pass, oldest expiry first", async () => {
    const made: FileRecord[] = [];
    for (let i = 0; i < 5; i++) {
      clock.t = T0 + i;
      made.push(await upload("assistants", 3600));
    }
    clock.t = T0 + 10_000;
    const r = reaper({ batchSize: 2 });
    expect((await r.runOnce()).files.reaped).toBe(2);
    expect(reapedFiles).toEqual(made.slice(0, 2).map((f) => f.id));
    await r.runOnce();
    await r.runOnce();
    expect(reapedFiles).toEqual(made.map((f) => f.id));
    expect(store.keys()).toEqual([]);
  });

  it("keeps going when one file fails, and leaves that file's row for a later pass", async () => {
    const a = await upload("assistants", 3600);
    const b = await upload("assistants", 3600);
    const c = await upload("assistants", 3600);
    store.failingDeletes.add(b.storageKey);
    clock.t = T0 + 3600;
    const summary = await reaper().runOnce();
    expect(summary.files).toEqual({ claimed: 3, reaped: 2, failed: 1 });
    expect(reapedFiles.sort()).toEqual([a.id, c.id].sort());
    expect(errors).toHaveLength(1);
    expect(errors[0]!.context).toEqual({ step: "delete object", fileId: b.id, key: b.storageKey });
    // The row stays (nothing points at a missing object), and the file is still invisible.
    expect(fileRepo.rows.has(b.id)).toBe(true);
    await expect(files.get(b.id)).rejects.toMatchObject({ code: "not_found" });

    // S3 is back; b's claim still holds for a while, then lapses and another pass finishes the job.
    store.failingDeletes.clear();
    expect((await reaper().runOnce()).files.claimed).toBe(0);
    clock.t += 301;
    expect((await reaper().runOnce()).files).toEqual({ claimed: 1, reaped: 1, failed: 0 });
    expect(fileRepo.rows.size).toBe(0);
    expect(store.keys()).toEqual([]);
  });

  it("finishes a reap that died after deleting the object (the row is claimed again once the lease lapses)", async () => {
    const file = await upload("assistants", 3600);
    clock.t = T0 + 3600;
    // A reaper claimed the row, deleted the object and died before deleting the row.
    expect(await fileRepo.claimExpired(clock.t, 10, clock.t + 300)).toHaveLength(1);
    await store.delete(file.storageKey);
    expect((await reaper().runOnce()).files.claimed).toBe(0);
    clock.t += 301;
    expect((await reaper().runOnce()).files).toEqual({ claimed: 1, reaped: 1, failed: 0 });
    expect(fileRepo.rows.size).toBe(0);
    expect(errors).toEqual([]);
  });

  it("carries on after a failed claim (database down), and reports it", async () => {
    await upload("assistants", 3600);
    clock.t = T0 + 3600;
    const realClaim = fileRepo.claimExpired.bind(fileRepo);
    fileRepo.claimExpired = async () => {
      throw new Error("connect ECONNREFUSED");
    };
    const summary = await reaper().runOnce();
    expect(summary.files).toEqual({ claimed: 0, reaped: 0, failed: 0 });
    expect(errors.map((e) => e.context.step)).toEqual(["claim files"]);
    fileRepo.claimExpired = realClaim;
    expect((await reaper().runOnce()).files.reaped).toBe(1);
  });

  it("a throwing event callback does not stop the pass", async () => {
    await upload("assistants", 3600);
    await upload("assistants", 3600);
    clock.t = T0 + 3600;
    const r = reaper({
      events: {
        fileReaped: () => {
          throw new Error("metrics broke");
        },
      },
    });
    expect((await r.runOnce()).files.reaped).toBe(2);
  });

  describe("uploads", () => {
    async function pendingWithParts(n: number): Promise<{ id: string; parts: UploadPartRecord[] }> {
      const view = await uploads.create({ filename: "big.bin", purpose: "batch", bytes: 100 });
      const parts = [];
      for (let i = 0; i < n; i++) parts.push(await uploads.addPart(view.upload.id, bodyOf(`part ${i}`)));
      return { id: view.upload.id, parts };
    }

    it("expires pending uploads past their expiry and removes their part objects and rows", async () => {
      const old = await pendingWithParts(3);
      clock.t = T0 + 1800;
      const young = await pendingWithParts(1);
      // Part writes cut off by a crash (no row, only an unfinished write in the store).
      const cutOff = store.addIncomplete(`uploads/${old.id}/part_${"a".repeat(32)}`);
      const youngWrite = store.addIncomplete(`uploads/${young.id}/part_${"b".repeat(32)}`);
      const unrelated = store.addIncomplete(null);
      clock.t = T0 + 3600; // `old` expires at exactly this second
      const summary = await reaper().runOnce();
      expect(summary.uploads).toEqual({ claimed: 1, expired: 1, partsRemoved: 3, writesAborted: 1, failed: 0 });
      const left = [];
      for await (const write of store.listIncomplete("")) left.push(write.id);
      expect(left.sort()).toEqual([youngWrite.id, unrelated.id].sort());
      expect(left).not.toContain(cutOff.id);
      expect(expiredUploads).toEqual([old.id]);
      expect(uploadRepo.uploads.get(old.id)?.status).toBe("expired");
      expect(await uploadRepo.listParts(old.id)).toEqual([]);
      for (const part of old.parts) expect(store.bytesOf(part.storageKey)).toBeUndefined();
      // The younger upload is untouched.
      expect(uploadRepo.uploads.get(young.id)?.status).toBe("pending");
      expect(store.keys()).toEqual(young.parts.map((p) => p.storageKey));
      // A client sees the expiry.
      expect((await uploads.get(old.id)).upload.status).toBe("expired");
    });

    it("never undoes a complete or cancel that won the race", async () => {
      const up = await pendingWithParts(1);
      clock.t = T0 + 3600;
      const [claimed] = await uploadRepo.claimUploadsToReap(clock.t, 10, clock.t + 1);
      expect(claimed?.status).toBe("pending");
      // Another request moved it on between this reaper's claim and its expiry.
      expect(await uploadRepo.transition(up.id, "pending", "completing")).toBe(true);
      clock.t += 2;
      const summary = await reaper().runOnce();
      expect(summary.uploads).toEqual({ claimed: 0, expired: 0, partsRemoved: 0, writesAborted: 0, failed: 0 });
      // And with the claim of a pending snapshot racing a completing upload: it is left alone.
      const r = reaper();
      uploadRepo.claimUploadsToReap = async () => [{ ...claimed!, status: "pending" }];
      expect((await r.runOnce()).uploads).toEqual({ claimed: 1, expired: 0, partsRemoved: 0, writesAborted: 0, failed: 0 });
      expect(uploadRepo.uploads.get(up.id)?.status).toBe("completing");
      expect(store.keys()).toEqual([up.parts[0]!.storageKey]);
    });

    it("removes the parts a crash left behind on cancelled, expired and completed uploads", async () => {
      const cancelled = await pendingWithParts(2);
      const completed = await pendingWithParts(1);
      // Crashes: the status changed, the part clean-up never ran.
      await uploadRepo.transition(cancelled.id, "pending", "cancelled");
      await uploadRepo.transition(completed.id, "pending", "completed");
      const summary = await reaper().runOnce();
      expect(summary.uploads).toEqual({ claimed: 2, expired: 0, partsRemoved: 3, writesAborted: 0, failed: 0 });
      expect(expiredUploads).toEqual([]);
      expect(store.keys()).toEqual([]);
      expect(uploadRepo.parts.size).toBe(0);
      expect(uploadRepo.uploads.get(cancelled.id)?.status).toBe("cancelled");
      expect(uploadRepo.uploads.get(completed.id)?.status).toBe("completed");
    });

    it("keeps a part's row when its object cannot be deleted, so a later pass retries it", async () => {
      const up = await pendingWithParts(3);
      store.failingDeletes.add(up.parts[1]!.storageKey);
      clock.t = T0 + 3600;
      const summary = await reaper().runOnce();
      expect(summary.uploads).toEqual({ claimed: 1, expired: 1, partsRemoved: 2, writesAborted: 0, failed: 1 });
      expect((await uploadRepo.listParts(up.id)).map((p) => p.id)).toEqual([up.parts[1]!.id]);
      expect(errors.map((e) => e.context)).toEqual([{ step: "delete object", uploadId: up.id, key: up.parts[1]!.storageKey }]);

      store.failingDeletes.clear();
      clock.t += 301;
      expect((await reaper().runOnce()).uploads).toEqual({ claimed: 1, expired: 0, partsRemoved: 1, writesAborted: 0, failed: 0 });
      expect(uploadRepo.parts.size).toBe(0);
      expect(store.keys()).toEqual([]);
      expect(expiredUploads).toEqual([up.id]); // expired once
    });

    it("does files and uploads in one pass, and one failing half does not stop the other", async () => {
      const file = await upload("assistants", 3600);
      const up = await pendingWithParts(1);
      clock.t = T0 + 3600;
      uploadRepo.claimUploadsToReap = async () => {
        throw new Error("relation does not exist");
      };
      const summary = await reaper().runOnce();
      expect(summary.files.reaped).toBe(1);
      expect(errors.map((e) => e.context.step)).toEqual(["claim uploads"]);
      expect(fileRepo.rows.has(file.id)).toBe(false);
      expect(uploadRepo.uploads.get(up.id)?.status).toBe("pending");
    });
  });

  describe("start and stop", () => {
    it("runs a pass every intervalSeconds until stopped", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      try {
        const r = reaper({ intervalSeconds: 60 });
        await upload("assistants", 3600);
        clock.t = T0 + 3600;
        r.start();
        r.start(); // a second start is a no-op, not a second loop
        await vi.advanceTimersByTimeAsync(59_000);
        expect(reapedFiles).toHaveLength(0); // the first pass is one interval after start
        await vi.advanceTimersByTimeAsync(1_000);
        expect(reapedFiles).toHaveLength(1);
        await upload("assistants", 3600);
        clock.t += 3600;
        await vi.advanceTimersByTimeAsync(60_000);
        expect(reapedFiles).toHaveLength(2);
        await r.stop();
        await upload("assistants", 3600);
        clock.t += 3600;
        await vi.advanceTimersByTimeAsync(600_000);
        expect(reapedFiles).toHaveLength(2); // stopped: no more passes
        expect(vi.getTimerCount()).toBe(0);
      } finally {
        vi.useRealTimers();
      }
    });

    it("does nothing with intervalSeconds 0", async () => {
      await upload("assistants", 3600);
      clock.t = T0 + 3600;
      const r = reaper({ intervalSeconds: 0 });
      r.start();
      await r.stop();
      expect(fileRepo.rows.size).toBe(1);
    });

    it("stop() waits for the pass in progress and skips the items it has not begun", async () => {
      for (let i = 0; i < 20; i++) await upload("assistants", 3600);
      clock.t = T0 + 3600;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let begun = 0;
      const realDelete = store.delete.bind(store);
      store.delete = async (key) => {
        begun++;
        await gate;
        return realDelete(key);
      };
      const r = reaper();
      const pass = r.runOnce();
      await new Promise((resolve) => setImmediate(resolve));
      const stopped = r.stop();
      release();
      await stopped;
      // stop() resolved only once the items already begun had finished (rows deleted); the rest
      // wait for another pass, once their claims lapse.
      expect(begun).toBeGreaterThan(0);
      expect(begun).toBeLessThan(20);
      expect(fileRepo.rows.size).toBe(20 - begun);
      expect((await pass).files).toEqual({ claimed: 20, reaped: begun, failed: 0 });
    });
  });
});
