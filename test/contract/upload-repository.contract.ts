/**
 * The behaviour every UploadRepository must have, run against each implementation.
 * The port has no way to delete an upload, so every test works on fresh ids and never
 * assumes the repository is otherwise empty.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newFileId, newPartId, newUploadId } from "../../src/files/ids.js";
import { STALE_COMPLETING_SECONDS, type UploadPartRecord, type UploadRecord, type UploadRepository, type UploadStatus } from "../../src/files/ports.js";

const T = 1_700_000_000;
const GiB = 1024 ** 3;

export function uploadRecord(overrides: Partial<UploadRecord> = {}): UploadRecord {
  return {
    id: newUploadId(),
    filename: "data.jsonl",
    purpose: "batch",
    bytes: 1234,
    mimeType: "application/jsonl",
    createdAt: T,
    expiresAt: T + 3600,
    fileExpiresAfterSeconds: null,
    status: "pending",
    fileId: null,
    ownerPrincipal: null,
    ...overrides,
  };
}

export function partRecord(uploadId: string, overrides: Partial<UploadPartRecord> = {}): UploadPartRecord {
  const id = overrides.id ?? newPartId();
  return {
    id,
    uploadId,
    bytes: 100,
    sha256: "b".repeat(64),
    storageKey: `uploads/${uploadId}/${id}`,
    createdAt: T,
    ...overrides,
  };
}

const byId = <R extends { id: string }>(rows: R[]) => [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

export interface OpenedUploadRepository {
  uploads: UploadRepository;
  close(): Promise<void>;
}

export function uploadRepositoryContract(name: string, open: () => Promise<OpenedUploadRepository>): void {
  describe(`UploadRepository contract: ${name}`, () => {
    let opened: OpenedUploadRepository;
    let repo: UploadRepository;

    beforeAll(async () => {
      opened = await open();
      repo = opened.uploads;
    });
    afterAll(async () => {
      await opened?.close();
    });

    async function created(overrides: Partial<UploadRecord> = {}): Promise<UploadRecord> {
      const upload = uploadRecord(overrides);
      await repo.insertUpload(upload);
      return upload;
    }

    it("round-trips every field, including sizes above 2^31 and null optional fields", async () => {
      const big = uploadRecord({ bytes: 8 * GiB, fileExpiresAfterSeconds: null, ownerPrincipal: null });
      const full = uploadRecord({
        filename: "résumé 📄 \"quoted\" 'x'.pdf",
        purpose: "user_data",
        bytes: 8 * GiB + 123,
        mimeType: "application/pdf; charset=binary",
        createdAt: T - 5,
        expiresAt: T + 7200,
        fileExpiresAfterSeconds: 2_592_000,
        status: "completed",
        fileId: newFileId(),
        ownerPrincipal: "user:alice",
      });
      await repo.insertUpload(big);
      await repo.insertUpload(full);
      const foundBig = await repo.findUpload(big.id);
      const foundFull = await repo.findUpload(full.id);
      expect(foundBig).toEqual(big);
      expect(foundFull).toEqual(full);
      for (const found of [foundBig, foundFull]) {
        expect(typeof found?.bytes).toBe("number");
        expect(typeof found?.createdAt).toBe("number");
        expect(typeof found?.expiresAt).toBe("number");
      }
      expect(typeof foundFull?.fileExpiresAfterSeconds).toBe("number");
      expect(foundBig?.fileExpiresAfterSeconds).toBeNull();
      expect(foundBig?.fileId).toBeNull();
      expect(foundBig?.ownerPrincipal).toBeNull();
    });

    it("returns undefined for an unknown id", async () => {
      await created();
      expect(await repo.findUpload(newUploadId())).toBeUndefined();
    });

    it("rejects a second insert with the same id and keeps the first", async () => {
      const first = await created({ filename: "first.txt" });
      await expect(repo.insertUpload({ ...first, filename: "second.txt" })).rejects.toThrow();
      expect(await repo.findUpload(first.id)).toEqual(first);
    });

    it("transitions by compare-and-set: once true, then false; wrong `from` false", async () => {
      const upload = await created();
      const other = await created();
      expect(await repo.transition(upload.id, "completing", "completed")).toBe(false); // wrong from
      expect((await repo.findUpload(upload.id))?.status).toBe("pending");

      expect(await repo.transition(upload.id, "pending", "completing")).toBe(true);
      expect(await repo.transition(upload.id, "pending", "completing")).toBe(false);
      expect(await repo.findUpload(upload.id)).toEqual({ ...upload, status: "completing" });

      const fileId = newFileId();
      expect(await repo.transition(upload.id, "pending", "completed", fileId)).toBe(false);
      expect((await repo.findUpload(upload.id))?.fileId).toBeNull(); // a lost transition records nothing
      expect(await repo.transition(upload.id, "completing", "completed", fileId)).toBe(true);
      expect(await repo.findUpload(upload.id)).toEqual({ ...upload, status: "completed", fileId });

      // Only the named upload changed.
      expect(await repo.findUpload(other.id)).toEqual(other);
    });

    it("keeps fileId when a later transition names none", async () => {
      const fileId = newFileId();
      const upload = await created({ status: "completing" });
      expect(await repo.transition(upload.id, "completing", "completed", fileId)).toBe(true);
      expect(await repo.transition(upload.id, "completed", "expired")).toBe(true);
      expect(await repo.findUpload(upload.id)).toEqual({ ...upload, status: "expired", fileId });
    });

    it("answers false for an unknown upload", async () => {
      expect(await repo.transition(newUploadId(), "pending", "cancelled")).toBe(false);
    });

    it("lets exactly one of many concurrent transitions from the same state win", async () => {
      const same = await created();
      const results = await Promise.all(Array.from({ length: 10 }, () => repo.transition(same.id, "pending", "completing")));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await repo.findUpload(same.id))?.status).toBe("completing");

      // Different targets racing (complete vs cancel vs expiry): still one winner, whose target sticks.
      const mixed = await created();
      const kinds: UploadStatus[] = ["completing", "cancelled", "expired"];
      const targets = Array.from({ length: 10 }, (_, i) => kinds[i % kinds.length]!);
      const raced = await Promise.all(targets.map((to) => repo.transition(mixed.id, "pending", to)));
      expect(raced.filter(Boolean)).toHaveLength(1);
      expect((await repo.findUpload(mixed.id))?.status).toBe(targets[raced.indexOf(true)]);
    });

    it("stores parts and lists only that upload's, with numeric fields as numbers", async () => {
      const a = await created();
      const b = await created();
      const aParts = [
        partRecord(a.id, { bytes: 64 * 1024 * 1024, createdAt: T + 2 }),
        partRecord(a.id, { bytes: 5 * GiB, sha256: "0123456789abcdef".repeat(4), createdAt: T }),
        partRecord(a.id, { bytes: 1, createdAt: T + 1, storageKey: "tenant/x/uploads/y/z" }),
      ];
      const bPart = partRecord(b.id);
      for (const p of [aParts[0]!, bPart, aParts[1]!, aParts[2]!]) await repo.insertPart(p);

      const listed = await repo.listParts(a.id);
      expect(byId(listed)).toEqual(byId(aParts));
      for (const p of listed) {
        expect(typeof p.bytes).toBe("number");
        expect(typeof p.createdAt).toBe("number");
      }
      expect(await repo.listParts(b.id)).toEqual([bPart]);
      expect(await repo.listParts(newUploadId())).toEqual([]);
      expect(await repo.countParts(a.id)).toBe(3);
      expect(await repo.countParts(b.id)).toBe(1);
      expect(await repo.countParts(newUploadId())).toBe(0);
      await repo.deletePart(aParts[0]!.id);
      expect(await repo.countParts(a.id)).toBe(2);
      await repo.deleteParts([aParts[1]!.id, aParts[2]!.id, "part_" + "f".repeat(32)]);
      expect(await repo.listParts(a.id)).toEqual([]);
      expect(await repo.listParts(b.id)).toEqual([bPart]);
      await repo.deleteParts([]);
    });

    it("rejects a second part with the same id", async () => {
      const upload = await created();
      const part = partRecord(upload.id);
      await repo.insertPart(part);
      await expect(repo.insertPart({ ...part, bytes: 999 })).rejects.toThrow();
      expect(await repo.listParts(upload.id)).toEqual([part]);
    });

    it("deletes one part, and deleting a missing part is not an error", async () => {
      const upload = await created();
      const keep = partRecord(upload.id);
      const drop = partRecord(upload.id);
      await repo.insertPart(keep);
      await repo.insertPart(drop);
      await repo.deletePart(drop.id);
      expect(await repo.listParts(upload.id)).toEqual([keep]);
      await expect(repo.deletePart(drop.id)).resolves.toBeUndefined();
      await expect(repo.deletePart(newPartId())).resolves.toBeUndefined();
      expect(await repo.listParts(upload.id)).toEqual([keep]);
      // Deleting parts leaves the upload row alone.
      expect(await repo.findUpload(upload.id)).toEqual(upload);
    });

    it("walks every part's storage key by id in keyset pages (listPartKeys)", async () => {
      const a = await created();
      const b = await created({ status: "cancelled" });
      const mine = [
        partRecord(a.id),
        partRecord(a.id, { storageKey: "tenant/x/uploads/y/z" }),
        partRecord(b.id),
        ...Array.from({ length: 6 }, () => partRecord(b.id)),
      ];
      for (const p of mine) await repo.insertPart(p);
      await repo.deletePart(mine[3]!.id);

      // Other tests' parts are still there: compare the whole walk with itself and check it holds ours.
      const walkParts = async (limit: number) => {
        const rows: { id: string; uploadId: string; storageKey: string }[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 10_000; pages++) {
          const page = await repo.listPartKeys(after, limit);
          expect(page.length).toBeLessThanOrEqual(limit);
          rows.push(...page);
          if (page.length < limit) return rows;
          after = page.at(-1)!.id;
        }
        throw new Error("listPartKeys() never ran out of pages");
      };
      const all = await walkParts(10_000);
      const ids = all.map((p) => p.id);
      expect(ids).toEqual([...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      expect(new Set(ids).size).toBe(ids.length);
      const wanted = mine.filter((_, i) => i !== 3).map((p) => ({ id: p.id, uploadId: p.uploadId, storageKey: p.storageKey }));
      expect(all).toEqual(expect.arrayContaining(wanted));
      expect(ids).not.toContain(mine[3]!.id);
      for (const limit of [1, 3]) expect(await walkParts(limit), `limit=${limit}`).toEqual(all);
      expect(await repo.listPartKeys(undefined, 0)).toEqual([]);
      expect(await repo.listPartKeys(ids.at(-1), 10)).toEqual([]);
    });

    describe("claimUploadsToReap (the reaper's claims)", () => {
      const LEASE = 300;
      /** Past every upload's expiry, present and future, within this suite. */
      const LATE = T + 10_000_000;

      /**
       * Other tests' uploads are never removed, so each test first claims everything that is
       * claimable, with a claim that never lapses within the suite: then only its own rows are left.
       */
      async function drain(): Promise<void> {
        while ((await repo.claimUploadsToReap(LATE, 1000, Number.MAX_SAFE_INTEGER)).length > 0);
      }

      it("claims pending uploads past their expiry, stale completing ones and ended uploads that still have parts, nothing else", async () => {
        await drain();
        const expired = await created({ expiresAt: T - 10, fileExpiresAfterSeconds: 7200 });
        const atExpiry = await created({ expiresAt: T });
        const live = await created({ expiresAt: T + 1 });
        const cancelledWithParts = await created({ status: "cancelled", expiresAt: T + 500 });
        const completedWithParts = await created({ status: "completed", fileId: newFileId(), expiresAt: T + 600 });
        const expiredWithParts = await created({ status: "expired", expiresAt: T - 20 });
        const cancelledClean = await created({ status: "cancelled", expiresAt: T - 30 });
        const completingPast = await created({ status: "completing", expiresAt: T - 40 });
        // Completing for so long past expiry that its completer must have died (with or without parts).
        const completingStale = await created({ status: "completing", expiresAt: T - STALE_COMPLETING_SECONDS });
        const completingStaleClean = await created({ status: "completing", expiresAt: T - STALE_COMPLETING_SECONDS - 1 });
        const completingAlmostStale = await created({ status: "completing", expiresAt: T - STALE_COMPLETING_SECONDS + 1 });
        for (const u of [live, cancelledWithParts, completedWithParts, expiredWithParts, completingPast, completingStale, completingAlmostStale]) {
          await repo.insertPart(partRecord(u.id));
        }
        const claimed = await repo.claimUploadsToReap(T, 100, T + LEASE);
        // Oldest expiry first, whole records.
        expect(claimed).toEqual([completingStaleClean, completingStale, expiredWithParts, expired, atExpiry, cancelledWithParts, completedWithParts]);
        expect(claimed.map((u) => u.id)).not.toContain(cancelledClean.id);
        expect(claimed.map((u) => u.id)).not.toContain(completingPast.id);
        expect(claimed.map((u) => u.id)).not.toContain(completingAlmostStale.id);
        expect(claimed.map((u) => u.id)).not.toContain(live.id);
        // A claim changes nothing else.
        expect(await repo.findUpload(expired.id)).toEqual(expired);
      });

      it("claims up to the limit and holds each claim until it lapses", async () => {
        await drain();
        const a = await created({ expiresAt: T - 3 });
        const b = await created({ expiresAt: T - 2 });
        const c = await created({ expiresAt: T - 1 });
        expect((await repo.claimUploadsToReap(T, 2, T + LEASE)).map((u) => u.id)).toEqual([a.id, b.id]);
        expect((await repo.claimUploadsToReap(T + 1, 10, T + 1 + LEASE)).map((u) => u.id)).toEqual([c.id]);
        expect(await repo.claimUploadsToReap(T + LEASE, 10, T + 2 * LEASE)).toEqual([]);
        expect(await repo.claimUploadsToReap(T, 0, T + LEASE)).toEqual([]);
        // The claimer of a and b died: after their lease they are claimable again, c's claim still holds.
        expect((await repo.claimUploadsToReap(T + LEASE + 1, 10, T + 2 * LEASE)).map((u) => u.id)).toEqual([a.id, b.id]);
      });

      it("gives each upload to one of many concurrent claimers", async () => {
        await drain();
        const uploads = [];
        for (let i = 0; i < 20; i++) uploads.push(await created({ expiresAt: T - 50 + (i % 5) }));
        const batches = await Promise.all(Array.from({ length: 5 }, () => repo.claimUploadsToReap(T, 6, T + LEASE)));
        const ids = batches.flatMap((batch) => batch.map((u) => u.id));
        expect(new Set(ids).size).toBe(ids.length);
        expect([...ids].sort()).toEqual(uploads.map((u) => u.id).sort());
      });

      it("no longer claims an ended upload once its parts are gone", async () => {
        await drain();
        const upload = await created({ status: "cancelled", expiresAt: T - 5 });
        const part = partRecord(upload.id);
        await repo.insertPart(part);
        expect((await repo.claimUploadsToReap(T, 10, T + 1)).map((u) => u.id)).toEqual([upload.id]);
        await repo.deletePart(part.id);
        expect(await repo.claimUploadsToReap(T + 2, 10, T + 3)).toEqual([]);
      });
    });
  });
}
