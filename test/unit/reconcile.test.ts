import { beforeEach, describe, expect, it } from "vitest";
import { UnsupportedByStore } from "../../src/files/errors.js";
import { FilesService } from "../../src/files/files-service.js";
import { newFileId, newPartId, newUploadId } from "../../src/files/ids.js";
import type { Clock } from "../../src/files/ports.js";
import { problemCount, Reconciler, repairedAll, type ReconcileOptions } from "../../src/files/reconcile.js";
import { UploadsService } from "../../src/files/uploads-service.js";
import { record } from "../contract/file-repository.contract.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { MemoryUploadRepository } from "../support/memory-upload-repository.js";
import { bodyOf } from "../support/test-helpers.js";

const T = 1_700_000_000;
const P = "tenants/acme/";
const HOUR = 3600;

describe("Reconciler (in-memory adapters)", () => {
  let store: MemoryObjectStore;
  let fileRepo: MemoryFileRepository;
  let uploadRepo: MemoryUploadRepository;
  let clock: Clock & { t: number };
  let files: FilesService;
  let uploads: UploadsService;

  beforeEach(() => {
    store = new MemoryObjectStore();
    fileRepo = new MemoryFileRepository();
    uploadRepo = new MemoryUploadRepository();
    clock = { t: T, now: () => clock.t };
    store.clock = clock;
    files = new FilesService({ store, repository: fileRepo, clock, keyPrefix: P, maxFileBytes: 1_000_000 });
    uploads = new UploadsService({ files, store, repository: uploadRepo, clock, keyPrefix: P, maxUploadBytes: 1_000_000, maxPartBytes: 100_000 });
  });

  const reconciler = (overrides: Partial<ReconcileOptions> = {}) =>
    new Reconciler({ store, files: fileRepo, uploads: uploadRepo, keyPrefix: P, clock, ...overrides });

  /** Puts an object straight into the store, `ageSeconds` old. */
  async function putRaw(key: string, ageSeconds: number, text = "stray"): Promise<void> {
    await store.put(key, bodyOf(text), { contentType: "application/octet-stream" });
    store.setLastModified(key, clock.now() - ageSeconds);
  }

  it("finds nothing wrong with files, an upload's parts and a completed upload made through the services", async () => {
    await files.upload({ filename: "a.txt", purpose: "assistants" }, bodyOf("hello"));
    await files.upload({ filename: "b.txt", purpose: "batch", expiresAfterSeconds: HOUR }, bodyOf("world"));
    const pending = await uploads.create({ filename: "c.bin", purpose: "assistants", bytes: 6 });
    await uploads.addPart(pending.upload.id, bodyOf("abc"));
    const done = await uploads.create({ filename: "d.bin", purpose: "assistants", bytes: 3 });
    const part = await uploads.addPart(done.upload.id, bodyOf("xyz"));
    await uploads.complete(done.upload.id, [part.id]);

    const report = await reconciler().scan();
    expect(problemCount(report)).toBe(0);
    expect(report).toMatchObject({ objects: 4, fileRows: 3, partRows: 1, unknownObjects: [], rowsOutsidePrefix: 0 });
  });

  it("does not take an expired file's object for an orphan", async () => {
    await files.upload({ filename: "old.txt", purpose: "batch", expiresAfterSeconds: HOUR }, bodyOf("old"));
    clock.t += 2 * HOUR; // expired, not yet reaped: its row still names the object
    const report = await reconciler().scan();
    expect(problemCount(report)).toBe(0);
    expect(report.fileRows).toBe(1);
  });

  it("reports orphans, unknown keys and nothing outside the prefix; apply deletes only old orphans", async () => {
    const kept = await files.upload({ filename: "kept.txt", purpose: "assistants" }, bodyOf("kept"));
    const oldOrphan = `${P}${newFileId()}`;
    const freshOrphan = `${P}${newFileId()}`;
    const oldPart = `${P}uploads/${newUploadId()}/${newPartId()}`;
    const unknown = [`${P}notes.txt`, `${P}uploads/not-an-upload/x`, `${P}${newFileId()}.bak`, `${P}sub/${newFileId()}`];
    const outside = [`other/${newFileId()}`, newFileId(), `${P.slice(0, -1)}-x/${newFileId()}`];
    await putRaw(oldOrphan, 2 * HOUR);
    await putRaw(freshOrphan, 10);
    await putRaw(oldPart, 2 * HOUR);
    for (const key of [...unknown, ...outside]) await putRaw(key, 10 * HOUR);

    const r = reconciler();
    const report = await r.scan();
    expect(report.orphanObjects.map((o) => [o.key, o.recent]).sort()).toEqual(
      [
        [oldOrphan, false],
        [freshOrphan, true],
        [oldPart, false],
      ].sort(),
    );
    expect(report.unknownObjects.map((o) => o.key).sort()).toEqual([...unknown].sort());
    expect(report.objects).toBe(1 + 3 + unknown.length);
    expect(report.missingObjects).toEqual([]);
    expect(problemCount(report)).toBe(3);

    const result = await r.repair(report);
    expect(result.deletedObjects.sort()).toEqual([oldOrphan, oldPart].sort());
    expect(result.deferred).toBe(1);
    expect(repairedAll(result)).toBe(false);
    expect(store.keys()).toEqual([kept.storageKey, freshOrphan, ...unknown, ...outside].sort());

    // Once past the grace period, the fresh one goes too; the rest never does.
    clock.t += HOUR;
    const later = await r.repair(await r.scan());
    expect(later.deletedObjects).toEqual([freshOrphan]);
    expect(repairedAll(later)).toBe(true);
    expect(store.keys()).toEqual([kept.storageKey, ...unknown, ...outside].sort());
    expect(problemCount(await r.scan())).toBe(0);
  });

  it("treats a part object as known only while its part row exists", async () => {
    const upload = await uploads.create({ filename: "c.bin", purpose: "assistants", bytes: 10 });
    const part = await uploads.addPart(upload.upload.id, bodyOf("12345"));
    // A crash between the part's put and its row leaves an object at a part key of a known upload.
    const stray = `${P}uploads/${upload.upload.id}/${newPartId()}`;
    await putRaw(stray, 2 * HOUR);
    const report = await reconciler().scan();
    expect(report.orphanObjects.map((o) => o.key)).toEqual([stray]);
    const result = await reconciler().repair(report);
    expect(result.deletedObjects).toEqual([stray]);
    expect(store.keys()).toEqual([part.storageKey]);
  });

  it("reports rows whose object is gone, and apply removes them through the repository's delete", async () => {
    const alive = await files.upload({ filename: "alive.txt", purpose: "assistants" }, bodyOf("alive"));
    const lost = await files.upload({ filename: "lost.txt", purpose: "assistants" }, bodyOf("lost"));
    const lostExpired = await files.upload({ filename: "x.txt", purpose: "batch", expiresAfterSeconds: HOUR }, bodyOf("x"));
    await store.delete(lost.storageKey);
    await store.delete(lostExpired.storageKey);
    clock.t += 2 * HOUR;

    const report = await reconciler().scan();
    expect(report.missingObjects.sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      [lost, lostExpired].map((f) => ({ id: f.id, storageKey: f.storageKey })).sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(problemCount(report)).toBe(2);

    const result = await reconciler().repair(report);
    expect(result.removedRows.sort()).toEqual([lost.id, lostExpired.id].sort());
    expect(repairedAll(result)).toBe(true);
    expect([...fileRepo.rows.keys()]).toEqual([alive.id]);
    // Deleted like any file: a client paging `after` it keeps its place.
    expect(await fileRepo.position(lost.id)).toEqual({ createdAt: lost.createdAt, id: lost.id, ownerPrincipal: lost.ownerPrincipal });
  });

  it("does not check rows whose object lies outside the prefix", async () => {
    await fileRepo.insert(record({ storageKey: `elsewhere/${newFileId()}` }));
    const report = await reconciler().scan();
    expect(report.rowsOutsidePrefix).toBe(1);
    expect(problemCount(report)).toBe(0);
  });

  it("reports unfinished writes under the prefix and aborts the old ones; others are left alone", async () => {
    const old = store.addIncomplete(`${P}${newFileId()}`, T - 2 * HOUR);
    const oldPart = store.addIncomplete(`${P}uploads/${newUploadId()}/${newPartId()}`, T - 2 * HOUR);
    const fresh = store.addIncomplete(`${P}${newFileId()}`, T - 5);
    const tempFile = store.addIncomplete(null, T - 2 * HOUR); // a local temp file: belongs to no key
    const foreign = store.addIncomplete(`${P}backup.tar`, T - 2 * HOUR);
    const outside = store.addIncomplete(`other/${newFileId()}`, T - 2 * HOUR);

    const r = reconciler();
    const report = await r.scan();
    expect(report.incompleteWrites.map((w) => w.id).sort()).toEqual([old.id, oldPart.id, fresh.id, tempFile.id].sort());
    expect(report.incompleteWrites.find((w) => w.id === fresh.id)?.recent).toBe(true);
    expect(report.unknownIncompleteWrites.map((w) => w.id)).toEqual([foreign.id]);
    expect(problemCount(report)).toBe(4);

    const result = await r.repair(report);
    expect(result.abortedWrites.map((w) => w.id).sort()).toEqual([old.id, oldPart.id, tempFile.id].sort());
    expect(result.deferred).toBe(1);
    const left = [];
    for await (const w of store.listIncomplete("")) left.push(w.id);
    expect(left.sort()).toEqual([fresh.id, foreign.id, outside.id].sort());
  });

  it("with an empty prefix (Llama Stack's layout) considers only keys shaped like ours", async () => {
    const llama = newFileId();
    await fileRepo.insert(record({ id: llama, storageKey: llama }));
    await putRaw(llama, 100 * HOUR);
    const orphan = newFileId();
    await putRaw(orphan, 2 * HOUR);
    const foreign = ["README.md", `models/${newFileId()}`, "file-123", `${newFileId().toUpperCase()}`];
    for (const key of foreign) await putRaw(key, 2 * HOUR);

    const r = reconciler({ keyPrefix: "" });
    const report = await r.scan();
    expect(report.orphanObjects.map((o) => o.key)).toEqual([orphan]);
    expect(report.unknownObjects.map((o) => o.key).sort()).toEqual([...foreign].sort());
    const result = await r.repair(report);
    expect(result.deletedObjects).toEqual([orphan]);
    expect(store.keys()).toEqual([llama, ...foreign].sort());
  });

  it("checks again before repairing: a row or object that appeared since the scan is kept", async () => {
    const orphanId = newFileId();
    await putRaw(`${P}${orphanId}`, 2 * HOUR);
    const lost = await files.upload({ filename: "lost.txt", purpose: "assistants" }, bodyOf("lost"));
    await store.delete(lost.storageKey);
    const partKey = `${P}uploads/${newUploadId()}/${newPartId()}`;
    await putRaw(partKey, 2 * HOUR);

    const r = reconciler();
    const report = await r.scan();
    expect(problemCount(report)).toBe(3);
    // Meanwhile: the orphan's row is committed (a slow upload finishing), the lost object is back,
    // and the part's row is written.
    await fileRepo.insert(record({ id: orphanId, storageKey: `${P}${orphanId}` }));
    await store.put(lost.storageKey, bodyOf("lost"), { contentType: "text/plain" });
    const [, uploadId, partId] = partKey.slice(P.length).split("/");
    await uploadRepo.insertPart({ id: partId!, uploadId: uploadId!, bytes: 5, sha256: "", storageKey: partKey, createdAt: T });

    const result = await r.repair(report);
    expect(result).toMatchObject({ deletedObjects: [], removedRows: [], resolvedMeanwhile: 3, failures: [] });
    expect(store.keys()).toContain(`${P}${orphanId}`);
    expect(store.keys()).toContain(partKey);
    expect(fileRepo.rows.has(lost.id)).toBe(true);
  });

  it("records a failed repair and carries on with the rest", async () => {
    const a = `${P}${newFileId()}`;
    const b = `${P}${newFileId()}`;
    await putRaw(a, 2 * HOUR);
    await putRaw(b, 2 * HOUR);
    store.failingDeletes.add(a);
    const r = reconciler();
    const result = await r.repair(await r.scan());
    expect(result.deletedObjects).toEqual([b]);
    expect(result.failures).toEqual([{ target: a, error: "object storage is unavailable; try again later" }]);
    expect(repairedAll(result)).toBe(false);
  });

  it("walks every page of rows and parts", async () => {
    for (let i = 0; i < 2345; i++) {
      const id = newFileId();
      await fileRepo.insert(record({ id, storageKey: `${P}${id}` }));
      await putRaw(`${P}${id}`, HOUR, "");
    }
    for (let i = 0; i < 1001; i++) {
      const uploadId = newUploadId();
      const partId = newPartId();
      const key = `${P}uploads/${uploadId}/${partId}`;
      await uploadRepo.insertPart({ id: partId, uploadId, bytes: 1, sha256: "", storageKey: key, createdAt: T });
      await putRaw(key, HOUR, "p");
    }
    const report = await reconciler().scan();
    expect(report).toMatchObject({ objects: 3346, fileRows: 2345, partRows: 1001 });
    expect(problemCount(report)).toBe(0);
  });

  it("rejects a negative or fractional grace period", () => {
    expect(() => reconciler({ graceSeconds: -1 })).toThrow(RangeError);
    expect(() => reconciler({ graceSeconds: 1.5 })).toThrow(RangeError);
    expect(() => reconciler({ graceSeconds: 0 })).not.toThrow();
  });

  it("reports orphan objects when the store cannot list unfinished writes, and counts that as a problem", async () => {
    const orphan = `${P}${newFileId()}`;
    await putRaw(orphan, 2 * HOUR);
    store.listIncomplete = () => {
      throw new UnsupportedByStore("unfinished writes cannot be listed on this store");
    };
    const r = reconciler();
    const report = await r.scan();
    expect(report.orphanObjects.map((o) => o.key)).toEqual([orphan]);
    expect(report.incompleteWrites).toEqual([]);
    expect(report.incompleteWritesUnlisted).toBe("unfinished writes cannot be listed on this store");
    expect(problemCount(report)).toBe(2);
    const repair = await r.repair(report);
    expect(repair.deletedObjects).toEqual([orphan]);
    expect(repairedAll(repair)).toBe(true); // the command still exits 1: the listing was not possible
  });

  it("still fails on any other listing error", async () => {
    store.listIncomplete = () => {
      throw new Error("connection reset");
    };
    await expect(reconciler().scan()).rejects.toThrow("connection reset");
  });
});
