import { createHash, randomBytes } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { FilesError } from "../../src/files/errors.js";
import { FilesService } from "../../src/files/files-service.js";
import { newPartId, newUploadId } from "../../src/files/ids.js";
import { STALE_COMPLETING_SECONDS, type ByteRange, type Clock, type UploadPartRecord, type UploadStatus } from "../../src/files/ports.js";
import { Reaper } from "../../src/files/reaper.js";
import { MAX_PARTS_PER_UPLOAD, UploadsService, type CreateUploadRequest } from "../../src/files/uploads-service.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { MemoryUploadRepository } from "../support/memory-upload-repository.js";
import { readAll } from "../support/test-helpers.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

async function* chunksOf(data: Uint8Array, size = 1000): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

async function failure(promise: Promise<unknown>): Promise<FilesError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FilesError);
  return err as FilesError;
}

/** A store whose `get` can be made to fail or to wait, to stand for a storage fault or a slow read mid-complete. */
class ScriptedStore extends MemoryObjectStore {
  failGetFor: { key: string; error: Error } | undefined;
  holdGets: Promise<void> | undefined;

  override async get(key: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    if (this.holdGets) await this.holdGets;
    if (this.failGetFor?.key === key) throw this.failGetFor.error;
    return super.get(key, range, signal);
  }
}

/** An upload repository that can fail one kind of write, as a database that drops out would. */
class FlakyUploadRepository extends MemoryUploadRepository {
  failInsertPart: Error | undefined;
  failTransitionTo: { to: UploadStatus; error: Error } | undefined;

  override async insertPart(part: UploadPartRecord): Promise<void> {
    if (this.failInsertPart) throw this.failInsertPart;
    return super.insertPart(part);
  }

  override async transition(id: string, from: UploadStatus, to: UploadStatus, fileId?: string): Promise<boolean> {
    if (this.failTransitionTo?.to === to) throw this.failTransitionTo.error;
    return super.transition(id, from, to, fileId);
  }
}

const MAX_UPLOAD = 100_000;
const MAX_PART = 10_000;
const TTL = 3600;

describe("UploadsService (in-memory adapters)", () => {
  let store: ScriptedStore;
  let fileRepo: MemoryFileRepository;
  let uploadRepo: FlakyUploadRepository;
  let clock: Clock & { t: number };
  let files: FilesService;
  let uploads: UploadsService;
  const orphans: string[] = [];

  beforeEach(() => {
    store = new ScriptedStore();
    fileRepo = new MemoryFileRepository();
    uploadRepo = new FlakyUploadRepository();
    clock = { t: 1_700_000_000, now: () => clock.t };
    orphans.length = 0;
    // maxFileBytes is far below the upload limit: an assembled upload must be held to its own limit.
    files = new FilesService({ store, repository: fileRepo, clock, keyPrefix: "p/", maxFileBytes: 1000, onOrphanedObject: (k) => orphans.push(k) });
    uploads = new UploadsService({
      files,
      store,
      repository: uploadRepo,
      clock,
      keyPrefix: "p/",
      maxUploadBytes: MAX_UPLOAD,
      maxPartBytes: MAX_PART,
      ttlSeconds: TTL,
      onOrphanedObject: (k) => orphans.push(k),
    });
  });

  const create = (bytes: number, extra: Partial<CreateUploadRequest> = {}) =>
    uploads.create({ filename: "big.jsonl", purpose: "batch", bytes, ...extra });

  const addPart = (id: string, data: Uint8Array) => uploads.addPart(id, chunksOf(data));

  /** Object keys under the upload's part prefix. */
  const partKeys = (uploadId: string) => store.keys().filter((k) => k.startsWith(`p/uploads/${uploadId}/`));

  async function downloaded(fileId: string): Promise<Buffer> {
    return readAll((await files.download(fileId)).body);
  }

  describe("create", () => {
    it("records a pending upload with its expiry and defaults", async () => {
      const { upload, file } = await create(12_345);
      expect(file).toBeNull();
      expect(upload).toEqual({
        id: upload.id,
        filename: "big.jsonl",
        purpose: "batch",
        bytes: 12_345,
        mimeType: "application/octet-stream",
        createdAt: clock.t,
        expiresAt: clock.t + TTL,
        fileExpiresAfterSeconds: null,
        status: "pending",
        fileId: null,
        ownerPrincipal: null,
      });
      expect(upload.id).toMatch(/^upload_[0-9a-f]{32}$/);
      expect(await uploadRepo.findUpload(upload.id)).toEqual(upload);
      expect((await uploads.get(upload.id)).upload).toEqual(upload);
    });

    it("accepts the limits' edges", async () => {
      await expect(create(1)).resolves.toBeDefined();
      await expect(create(MAX_UPLOAD)).resolves.toBeDefined();
      const { upload } = await create(10, { expiresAfterSeconds: 3600, mimeType: "text/plain" });
      expect(upload).toMatchObject({ fileExpiresAfterSeconds: 3600, mimeType: "text/plain" });
      await expect(create(10, { expiresAfterSeconds: 2_592_000 })).resolves.toBeDefined();
    });

    it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])("refuses bytes=%s as invalid_argument on bytes", async (bytes) => {
      const err = await failure(create(bytes));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("bytes");
      expect(uploadRepo.uploads.size).toBe(0);
    });

    it("refuses bytes over the upload limit as too_large on bytes", async () => {
      const err = await failure(create(MAX_UPLOAD + 1));
      expect(err.code).toBe("too_large");
      expect(err.param).toBe("bytes");
      expect(uploadRepo.uploads.size).toBe(0);
    });

    it.each(["nonsense", "batch_output", ""])("refuses purpose '%s'", async (purpose) => {
      const err = await failure(create(10, { purpose }));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("purpose");
      expect(uploadRepo.uploads.size).toBe(0);
    });

    it.each([3599, 2_592_001, 3600.5, 0, -3600])("refuses expiresAfterSeconds=%s", async (expiresAfterSeconds) => {
      const err = await failure(create(10, { expiresAfterSeconds }));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("expires_after.seconds");
      expect(uploadRepo.uploads.size).toBe(0);
    });

    it("refuses a bad filename and mime type", async () => {
      expect((await failure(create(10, { filename: "" }))).param).toBe("filename");
      expect((await failure(create(10, { mimeType: "not a type" }))).param).toBe("mime_type");
    });
  });

  describe("addPart", () => {
    it("stores the part as its own object and records its size and hash", async () => {
      const { upload } = await create(5000);
      const data = randomBytes(3000);
      const part = await addPart(upload.id, data);
      expect(part).toEqual({
        id: part.id,
        uploadId: upload.id,
        bytes: 3000,
        sha256: sha256(data),
        storageKey: `p/uploads/${upload.id}/${part.id}`,
        createdAt: clock.t,
      });
      expect(part.id).toMatch(/^part_[0-9a-f]{32}$/);
      expect(store.bytesOf(part.storageKey)).toEqual(data);
      expect(await uploadRepo.listParts(upload.id)).toEqual([part]);
    });

    it.each([newUploadId(), "upload_xyz", "file-" + "a".repeat(32), "", "../etc"])("answers not_found for upload '%s'", async (id) => {
      const err = await failure(addPart(id, randomBytes(10)));
      expect(err.code).toBe("not_found");
      expect(err.param).toBe("upload_id");
      expect(store.putKeys).toEqual([]);
    });

    it("refuses a part over the part limit as too_large on data and keeps nothing", async () => {
      const { upload } = await create(50_000);
      const err = await failure(addPart(upload.id, randomBytes(MAX_PART + 1)));
      expect(err.code).toBe("too_large");
      expect(err.param).toBe("data");
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      // Exactly the limit is fine.
      await expect(addPart(upload.id, randomBytes(MAX_PART))).resolves.toBeDefined();
    });

    it("refuses a part larger than the whole upload as too_large", async () => {
      const { upload } = await create(100);
      const err = await failure(addPart(upload.id, randomBytes(101)));
      expect(err.code).toBe("too_large");
      expect(err.param).toBe("data");
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });

    it("refuses an empty part as invalid_argument on data and keeps nothing", async () => {
      const { upload } = await create(100);
      for (const body of [chunksOf(new Uint8Array(0)), (async function* () { yield new Uint8Array(0); })()]) {
        const err = await failure(uploads.addPart(upload.id, body));
        expect(err.code).toBe("invalid_argument");
        expect(err.param).toBe("data");
      }
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });

    it("removes the part object when its row cannot be written", async () => {
      const { upload } = await create(5000);
      uploadRepo.failInsertPart = new Error("database went away");
      const err = await failure(addPart(upload.id, randomBytes(1000)));
      expect(err.code).toBe("unavailable");
      expect(store.keys()).toEqual([]);
      uploadRepo.failInsertPart = undefined;
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });

    it("refuses a part beyond the most parts an upload may have", async () => {
      const { upload } = await create(50_000);
      // Seeded rows: streaming ten thousand parts would only slow the test down.
      for (let i = 0; i < MAX_PARTS_PER_UPLOAD; i++) {
        await uploadRepo.insertPart({ id: newPartId(), uploadId: upload.id, bytes: 1, sha256: "", storageKey: "x", createdAt: clock.t });
      }
      const err = await failure(addPart(upload.id, randomBytes(10)));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("data");
      expect(store.putKeys).toEqual([]);
    });

    it("keeps nothing when the body fails midway", async () => {
      const { upload } = await create(5000);
      const boom = new Error("client went away");
      const body = (async function* () {
        yield randomBytes(1000);
        throw boom;
      })();
      await expect(uploads.addPart(upload.id, body)).rejects.toBe(boom);
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      expect((await uploads.get(upload.id)).upload.status).toBe("pending");
    });
  });

  describe("complete", () => {
    it("assembles the parts in the order given, with the right bytes and SHA-256, and cleans up the parts", async () => {
      const pieces = [randomBytes(9000), randomBytes(7), randomBytes(9999), randomBytes(4000)];
      const total = pieces.reduce((n, p) => n + p.length, 0); // 22_006: above maxFileBytes, within maxUploadBytes
      const { upload } = await create(total, { filename: "out.jsonl", mimeType: "application/jsonl", purpose: "fine-tune" });
      const parts: UploadPartRecord[] = [];
      for (const p of pieces) parts.push(await addPart(upload.id, p));
      // Not the order they arrived in.
      const order = [2, 0, 3, 1];
      const expected = Buffer.concat(order.map((i) => pieces[i]!));
      clock.t += 10;
      const done = await uploads.complete(
        upload.id,
        order.map((i) => parts[i]!.id),
      );
      expect(done.upload).toEqual({ ...upload, status: "completed", fileId: done.file?.id });
      expect(done.file).toMatchObject({
        filename: "out.jsonl",
        purpose: "fine-tune",
        mimeType: "application/jsonl",
        bytes: total,
        sha256: sha256(expected),
        createdAt: clock.t,
        expiresAt: null,
      });
      const fileId = done.file!.id;
      expect(await downloaded(fileId)).toEqual(expected);
      expect(store.keys()).toEqual([`p/${fileId}`]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      expect(await uploads.get(upload.id)).toEqual(done);
      expect(orphans).toEqual([]);
    });

    it("gives the file the expiry the upload asked for", async () => {
      const data = randomBytes(500);
      const { upload } = await create(500, { expiresAfterSeconds: 86_400 });
      const part = await addPart(upload.id, data);
      clock.t += 100;
      const { file } = await uploads.complete(upload.id, [part.id]);
      expect(file?.expiresAt).toBe(clock.t + 86_400);
    });

    it("refuses parts that do not add up to bytes, on part_ids, and stays pending", async () => {
      const { upload } = await create(300);
      const a = await addPart(upload.id, randomBytes(100));
      const b = await addPart(upload.id, randomBytes(100));
      const c = await addPart(upload.id, randomBytes(100));
      for (const ids of [[a.id, b.id], [a.id]]) {
        const err = await failure(uploads.complete(upload.id, ids));
        expect(err.code).toBe("invalid_argument");
        expect(err.param).toBe("part_ids");
      }
      expect((await uploads.get(upload.id)).upload.status).toBe("pending");
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      expect(fileRepo.rows.size).toBe(0);
      expect(partKeys(upload.id)).toHaveLength(3);
      // The full set still completes.
      await expect(uploads.complete(upload.id, [a.id, b.id, c.id])).resolves.toMatchObject({ upload: { status: "completed" } });
    });

    it("checks a correct MD5 (any case)", async () => {
      const data = randomBytes(2500);
      const { upload } = await create(2500);
      const a = await addPart(upload.id, data.subarray(0, 1200));
      const b = await addPart(upload.id, data.subarray(1200));
      const { file } = await uploads.complete(upload.id, [a.id, b.id], { md5: md5(data).toUpperCase() });
      expect(file?.sha256).toBe(sha256(data));
      expect(await downloaded(file!.id)).toEqual(data);
    });

    it("refuses a wrong MD5 on md5, keeps no file, and leaves the upload pending to retry", async () => {
      const data = randomBytes(2500);
      const { upload } = await create(2500);
      const a = await addPart(upload.id, data.subarray(0, 1200));
      const b = await addPart(upload.id, data.subarray(1200));
      const err = await failure(uploads.complete(upload.id, [a.id, b.id], { md5: "0".repeat(32) }));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("md5");
      expect(fileRepo.rows.size).toBe(0);
      expect(store.keys()).toEqual([a.storageKey, b.storageKey].sort()); // no file object left behind
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      expect((await uploads.get(upload.id)).upload.status).toBe("pending");
      // The same parts complete once the MD5 is right.
      const { file } = await uploads.complete(upload.id, [a.id, b.id], { md5: md5(data) });
      expect(await downloaded(file!.id)).toEqual(data);
    });

    it("refuses a malformed MD5 before touching anything", async () => {
      const { upload } = await create(10);
      const part = await addPart(upload.id, randomBytes(10));
      for (const bad of ["xyz", "0".repeat(31), "g".repeat(32)]) {
        const err = await failure(uploads.complete(upload.id, [part.id], { md5: bad }));
        expect(err.code).toBe("invalid_argument");
        expect(err.param).toBe("md5");
      }
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
    });

    it("refuses duplicate, unknown, foreign, malformed and empty part ids on part_ids", async () => {
      const { upload } = await create(200);
      const a = await addPart(upload.id, randomBytes(100));
      const b = await addPart(upload.id, randomBytes(100));
      const other = await create(100);
      const foreign = await addPart(other.upload.id, randomBytes(100));
      const cases: string[][] = [
        [a.id, a.id], // twice: would add up to 200, the declared size
        [a.id, newPartId()],
        [a.id, foreign.id],
        [a.id, "part_nope"],
        [a.id, b.id.toUpperCase()],
        [],
      ];
      for (const ids of cases) {
        const err = await failure(uploads.complete(upload.id, ids));
        expect(err.code, JSON.stringify(ids)).toBe("invalid_argument");
        expect(err.param, JSON.stringify(ids)).toBe("part_ids");
      }
      expect(fileRepo.rows.size).toBe(0);
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      // The other upload's part is untouched.
      expect(await uploadRepo.listParts(other.upload.id)).toEqual([foreign]);
    });

    it("refuses more part ids than an upload may have", async () => {
      const { upload } = await create(10);
      const ids = Array.from({ length: MAX_PARTS_PER_UPLOAD + 1 }, () => newPartId());
      const err = await failure(uploads.complete(upload.id, ids));
      expect(err.code).toBe("invalid_argument");
      expect(err.param).toBe("part_ids");
    });

    it("removes the new file and stays pending when the completed state cannot be recorded", async () => {
      const data = randomBytes(400);
      const { upload } = await create(400);
      const part = await addPart(upload.id, data);
      uploadRepo.failTransitionTo = { to: "completed", error: new Error("database went away") };
      const err = await failure(uploads.complete(upload.id, [part.id]));
      expect(err.code).toBe("unavailable");
      uploadRepo.failTransitionTo = undefined;
      expect(fileRepo.rows.size).toBe(0);
      expect(store.keys()).toEqual([part.storageKey]);
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      const { file } = await uploads.complete(upload.id, [part.id]);
      expect(await downloaded(file!.id)).toEqual(data);
    });

    it("answers a second complete with the same file (idempotent)", async () => {
      const data = randomBytes(300);
      const { upload } = await create(300);
      const part = await addPart(upload.id, data);
      const first = await uploads.complete(upload.id, [part.id]);
      const second = await uploads.complete(upload.id, [part.id]);
      expect(second).toEqual(first);
      expect(fileRepo.rows.size).toBe(1);
      expect(store.keys()).toEqual([`p/${first.file!.id}`]);
    });

    it("shows a completed upload without its file once the file is deleted", async () => {
      const { upload } = await create(30);
      const part = await addPart(upload.id, randomBytes(30));
      const { file } = await uploads.complete(upload.id, [part.id]);
      await files.delete(file!.id);
      const view = await uploads.get(upload.id);
      expect(view.upload).toMatchObject({ status: "completed", fileId: file!.id });
      expect(view.file).toBeNull();
    });

    it("refuses parts and cancel once completed", async () => {
      const { upload } = await create(30);
      const part = await addPart(upload.id, randomBytes(30));
      await uploads.complete(upload.id, [part.id]);
      const add = await failure(addPart(upload.id, randomBytes(1)));
      expect(add.code).toBe("conflict");
      expect(add.param).toBe("upload_id");
      expect((await failure(uploads.cancel(upload.id))).code).toBe("conflict");
      expect(partKeys(upload.id)).toEqual([]);
    });

    it("answers not_found for an unknown upload", async () => {
      const err = await failure(uploads.complete(newUploadId(), [newPartId()]));
      expect(err.code).toBe("not_found");
      expect(err.param).toBe("upload_id");
    });

    it("leaves the upload pending and no file when storage fails mid-complete", async () => {
      const pieces = [randomBytes(3000), randomBytes(3000), randomBytes(3000)];
      const { upload } = await create(9000);
      const parts: UploadPartRecord[] = [];
      for (const p of pieces) parts.push(await addPart(upload.id, p));
      const boom = new FilesError("unavailable", "object storage is unavailable; try again later");
      store.failGetFor = { key: parts[1]!.storageKey, error: boom };
      const err = await failure(uploads.complete(upload.id, parts.map((p) => p.id)));
      expect(err.code).toBe("unavailable");
      expect(fileRepo.rows.size).toBe(0);
      expect(store.keys()).toEqual(parts.map((p) => p.storageKey).sort()); // the parts, and no file object
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      expect(await uploadRepo.listParts(upload.id)).toHaveLength(3);
      // Once storage is back, the same request succeeds.
      store.failGetFor = undefined;
      const { file } = await uploads.complete(upload.id, parts.map((p) => p.id));
      expect(await downloaded(file!.id)).toEqual(Buffer.concat(pieces));
    });

    it("answers a part lost from storage with a conflict naming it, and completes once it is sent again", async () => {
      const pieces = [randomBytes(3000), randomBytes(3000)];
      const { upload } = await create(6000);
      const parts: UploadPartRecord[] = [];
      for (const p of pieces) parts.push(await addPart(upload.id, p));
      await store.delete(parts[0]!.storageKey); // lost behind the service's back
      const err = await failure(uploads.complete(upload.id, parts.map((p) => p.id)));
      expect(err.code).toBe("conflict");
      expect(err.param).toBe("part_ids");
      expect(err.message).toContain(parts[0]!.id);
      expect(fileRepo.rows.size).toBe(0);
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("pending");
      expect((await uploadRepo.listParts(upload.id)).map((p) => p.id)).toEqual([parts[1]!.id]);
      const again = await addPart(upload.id, pieces[0]!);
      const { file } = await uploads.complete(upload.id, [again.id, parts[1]!.id]);
      expect(await downloaded(file!.id)).toEqual(Buffer.concat(pieces));
    });

    it("shows pending while completing, and refuses a racing cancel, complete or part", async () => {
      const data = randomBytes(100);
      const { upload } = await create(100);
      const part = await addPart(upload.id, data);
      let release!: () => void;
      store.holdGets = new Promise<void>((r) => (release = r));
      const completing = uploads.complete(upload.id, [part.id]);
      await waitUntil(async () => (await uploadRepo.findUpload(upload.id))?.status === "completing");

      expect((await uploads.get(upload.id)).upload.status).toBe("pending");
      for (const racer of [uploads.cancel(upload.id), uploads.complete(upload.id, [part.id]), addPart(upload.id, randomBytes(1))]) {
        const err = await failure(racer);
        expect(err.code).toBe("conflict");
        expect(err.message).toMatch(/being completed/);
      }
      store.holdGets = undefined;
      release();
      const done = await completing;
      expect(await downloaded(done.file!.id)).toEqual(data);
      expect(store.keys()).toEqual([`p/${done.file!.id}`]);
    });
  });

  describe("cancel", () => {
    it("removes every part object and row; cancelling twice is fine", async () => {
      const { upload } = await create(50_000);
      // More parts than the clean-up does at once.
      for (let i = 0; i < 19; i++) await addPart(upload.id, randomBytes(100));
      const other = await create(100);
      const keep = await addPart(other.upload.id, randomBytes(100));

      const first = await uploads.cancel(upload.id);
      expect(first.upload).toEqual({ ...upload, status: "cancelled" });
      expect(first.file).toBeNull();
      expect(partKeys(upload.id)).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("cancelled");

      const second = await uploads.cancel(upload.id);
      expect(second.upload.status).toBe("cancelled");
      expect((await uploads.get(upload.id)).upload.status).toBe("cancelled");

      // Another upload's part is not touched.
      expect(store.keys()).toEqual([keep.storageKey]);
      expect(await uploadRepo.listParts(other.upload.id)).toEqual([keep]);
    });

    it("keeps a part's row when its object cannot be removed, so the reaper removes both later", async () => {
      const { upload } = await create(200);
      const [kept, stuck] = [await addPart(upload.id, randomBytes(100)), await addPart(upload.id, randomBytes(100))];
      store.failingDeletes.add(stuck.storageKey);

      expect((await uploads.cancel(upload.id)).upload.status).toBe("cancelled");
      expect(store.keys()).toEqual([stuck.storageKey]);
      // The row is how the object is found again; without it the object would be lost for good.
      expect(await uploadRepo.listParts(upload.id)).toEqual([stuck]);
      expect(await uploadRepo.listParts(upload.id)).not.toContainEqual(kept);

      store.failingDeletes.clear();
      const reaper = new Reaper({ files: fileRepo, uploads: uploadRepo, store, clock, intervalSeconds: 0, batchSize: 10 });
      expect((await reaper.runOnce()).uploads).toMatchObject({ claimed: 1, partsRemoved: 1, failed: 0 });
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });

    it("refuses parts and complete after cancel with a conflict", async () => {
      const { upload } = await create(100);
      const part = await addPart(upload.id, randomBytes(100));
      await uploads.cancel(upload.id);
      const add = await failure(addPart(upload.id, randomBytes(10)));
      expect(add.code).toBe("conflict");
      expect(add.param).toBe("upload_id");
      expect(add.message).toMatch(/cancelled/);
      const done = await failure(uploads.complete(upload.id, [part.id]));
      expect(done.code).toBe("conflict");
      expect(done.param).toBe("upload_id");
      expect(store.keys()).toEqual([]);
      expect(fileRepo.rows.size).toBe(0);
    });

    it("answers not_found for an unknown upload", async () => {
      const err = await failure(uploads.cancel(newUploadId()));
      expect(err.code).toBe("not_found");
      expect(err.param).toBe("upload_id");
    });

    it("discards a part that was still streaming when the upload was cancelled", async () => {
      const { upload } = await create(5000);
      const earlier = await addPart(upload.id, randomBytes(100));
      const body = async function* () {
        yield randomBytes(500);
        await uploads.cancel(upload.id); // the cancel wins while this part is mid-stream
        yield randomBytes(500);
      };
      const err = await failure(uploads.addPart(upload.id, body()));
      expect(err.code).toBe("conflict");
      expect(err.param).toBe("upload_id");
      expect(err.message).toMatch(/cancelled/);
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      expect(store.putKeys.filter((k) => k !== earlier.storageKey)).toHaveLength(1); // the streaming part did reach the store
      expect((await uploads.get(upload.id)).upload.status).toBe("cancelled");
    });
  });

  describe("a part racing a complete", () => {
    it("discards a part that was still streaming when a complete began, with a conflict that says why", async () => {
      const first = randomBytes(100);
      const { upload } = await create(100);
      const part = await addPart(upload.id, first);
      let release!: () => void;
      store.holdGets = new Promise<void>((r) => (release = r));
      let completing: Promise<unknown> | undefined;
      const body = async function* () {
        yield randomBytes(50);
        completing = uploads.complete(upload.id, [part.id]);
        await waitUntil(async () => (await uploadRepo.findUpload(upload.id))?.status === "completing");
        yield randomBytes(50);
      };
      const err = await failure(uploads.addPart(upload.id, body()));
      store.holdGets = undefined;
      release();
      await completing;
      expect(err.code).toBe("conflict");
      expect(err.param).toBe("upload_id");
      // A 409 that claims the upload "is pending" contradicts itself; it is being completed.
      expect(err.message).not.toMatch(/is pending/);
      expect(partKeys(upload.id)).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });
  });

  describe("expiry", () => {
    it("is still pending one second before expiresAt", async () => {
      const { upload } = await create(100);
      clock.t = upload.expiresAt - 1;
      expect((await uploads.get(upload.id)).upload.status).toBe("pending");
      await expect(addPart(upload.id, randomBytes(100))).resolves.toBeDefined();
    });

    it("expires lazily once the clock passes expiresAt, and removes the parts", async () => {
      const { upload } = await create(300);
      const a = await addPart(upload.id, randomBytes(100));
      await addPart(upload.id, randomBytes(100));
      clock.t = upload.expiresAt + 5;

      const view = await uploads.get(upload.id);
      expect(view.upload).toEqual({ ...upload, status: "expired" });
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("expired");
      expect(partKeys(upload.id)).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);

      const add = await failure(addPart(upload.id, randomBytes(100)));
      expect(add.code).toBe("conflict");
      expect(add.param).toBe("upload_id");
      expect(add.message).toMatch(/expired/);
      expect(partKeys(upload.id)).toEqual([]);

      const done = await failure(uploads.complete(upload.id, [a.id]));
      expect(done.code).toBe("conflict");
      expect(done.message).toMatch(/expired/);
      expect((await failure(uploads.cancel(upload.id))).code).toBe("conflict");
      expect(fileRepo.rows.size).toBe(0);
    });

    it("does not accept a part whose upload expired while it was streaming", async () => {
      const { upload } = await create(5000);
      const body = async function* () {
        yield randomBytes(500);
        clock.t = upload.expiresAt + 1; // the hour runs out mid-part
        yield randomBytes(500);
      };
      const err = await failure(uploads.addPart(upload.id, body()));
      expect(err.code).toBe("conflict");
      expect(err.message).toMatch(/expired/);
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
    });

    it("expires an upload a dead process left completing, once it is STALE_COMPLETING_SECONDS past expiry", async () => {
      const { upload } = await create(200);
      const parts = [await addPart(upload.id, randomBytes(100)), await addPart(upload.id, randomBytes(100))];
      // What a process that died mid-complete leaves behind.
      expect(await uploadRepo.transition(upload.id, "pending", "completing")).toBe(true);

      clock.t = upload.expiresAt + STALE_COMPLETING_SECONDS - 1;
      const busy = await failure(uploads.complete(upload.id, parts.map((p) => p.id)));
      expect(busy.code).toBe("conflict");
      expect(busy.message).toMatch(/being completed/);
      expect(partKeys(upload.id)).toHaveLength(2);

      clock.t = upload.expiresAt + STALE_COMPLETING_SECONDS;
      expect((await uploads.get(upload.id)).upload.status).toBe("expired");
      expect(partKeys(upload.id)).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      const retry = await failure(uploads.complete(upload.id, parts.map((p) => p.id)));
      expect(retry.code).toBe("conflict");
      expect(retry.message).toMatch(/expired/);
      expect(fileRepo.rows.size).toBe(0);
    });

    it("expires exactly at expiresAt, on the first call that looks (addPart)", async () => {
      const { upload } = await create(300);
      await addPart(upload.id, randomBytes(100));
      clock.t = upload.expiresAt;
      const add = await failure(addPart(upload.id, randomBytes(100)));
      expect(add.code).toBe("conflict");
      expect(add.message).toMatch(/expired/);
      expect(store.keys()).toEqual([]);
      expect(await uploadRepo.listParts(upload.id)).toEqual([]);
      expect((await uploadRepo.findUpload(upload.id))?.status).toBe("expired");
    });
  });
});

/** Polls until `check` is true (for a state another in-flight call reaches asynchronously). */
async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition never became true");
    await new Promise((r) => setTimeout(r, 5));
  }
}
