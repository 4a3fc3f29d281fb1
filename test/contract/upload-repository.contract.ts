/**
 * The behaviour every UploadRepository must have, run against each implementation.
 * The port has no way to delete an upload, so every test works on fresh ids and never
 * assumes the repository is otherwise empty.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newFileId, newPartId, newUploadId } from "../../src/files/ids.js";
import type { UploadPartRecord, UploadRecord, UploadRepository, UploadStatus } from "../../src/files/ports.js";

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
  });
}
