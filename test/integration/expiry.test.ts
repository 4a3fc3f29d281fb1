/**
 * An expired file is gone the moment it expires, for every operation, on both metadata databases;
 * and the reaper then removes its object and row. Time moves with the core's injectable clock.
 */
import * as path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defaultTtlLookup } from "../../src/files/default-ttl.js";
import { FilesError } from "../../src/files/errors.js";
import { FilesService } from "../../src/files/files-service.js";
import { STALE_COMPLETING_SECONDS, type Clock, type FileRecord } from "../../src/files/ports.js";
import { Reaper } from "../../src/files/reaper.js";
import { UploadsService } from "../../src/files/uploads-service.js";
import { openMetadata, type MetadataRepositories, type MetadataStoreOptions } from "../../src/metadata/open.js";
import { LocalFsObjectStore } from "../../src/storage/local-fs-object-store.js";
import { createTestDatabase, tempDir } from "../support/env.js";

const T0 = 1_700_000_000;
const HOUR = 3600;

async function* bytes(text: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(text);
}

async function code(promise: Promise<unknown>): Promise<{ code: string; param: string | undefined }> {
  const err = await promise.then(
    () => new Error("expected a failure"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FilesError);
  return { code: (err as FilesError).code, param: (err as FilesError).param };
}

const backends: [string, () => Promise<MetadataStoreOptions>][] = [
  ["SQLite", async () => ({ type: "sqlite", dbPath: path.join(await tempDir("expiry sqlite"), "files.db") })],
  ["PostgreSQL", async () => ({ type: "postgres", url: await createTestDatabase("expiry") })],
];

describe.each(backends)("expiry on %s", (_name, options) => {
  let metadata: MetadataRepositories;
  let store: LocalFsObjectStore;
  const clock: Clock & { t: number } = { t: T0, now: () => clock.t };
  let files: FilesService;
  let uploads: UploadsService;

  beforeAll(async () => {
    metadata = await openMetadata(await options());
    store = new LocalFsObjectStore({ dir: await tempDir("expiry objects") });
    files = new FilesService({ store, repository: metadata.files, clock, maxFileBytes: 1_000_000, defaultTtlSeconds: defaultTtlLookup() });
    uploads = new UploadsService({ files, store, repository: metadata.uploads, clock, maxUploadBytes: 1_000_000, maxPartBytes: 100_000 });
  });
  afterAll(async () => {
    await metadata?.files.close();
  });
  beforeEach(() => {
    clock.t += 10_000_000; // each test in its own stretch of time, clear of the others' files
  });

  async function upload(expiresAfterSeconds: number | undefined, purpose = "assistants"): Promise<FileRecord> {
    return files.upload({ filename: "x.txt", purpose, expiresAfterSeconds }, bytes("some bytes"));
  }

  async function listedIds(request: Parameters<FilesService["list"]>[0] = {}): Promise<string[]> {
    return (await files.list({ limit: 10_000, ...request })).data.map((f) => f.id);
  }

  it("hides a file from get, download, list and delete from its expiry second on, not a second before", async () => {
    const file = await upload(HOUR);
    const other = await upload(undefined); // assistants: never expires by default
    expect(file.expiresAt).toBe(clock.t + HOUR);
    expect(other.expiresAt).toBeNull();

    clock.t = file.expiresAt! - 1;
    expect((await files.get(file.id)).id).toBe(file.id);
    expect(await listedIds()).toContain(file.id);
    expect(await listedIds({ purpose: "assistants" })).toContain(file.id);

    clock.t = file.expiresAt!;
    expect(await code(files.get(file.id))).toEqual({ code: "not_found", param: "file_id" });
    expect(await code(files.download(file.id))).toMatchObject({ code: "not_found" });
    expect(await code(files.download(file.id, { offset: 2, length: 3 }))).toMatchObject({ code: "not_found" });
    expect(await listedIds()).not.toContain(file.id);
    expect(await listedIds({ purpose: "assistants", order: "asc" })).not.toContain(file.id);
    expect(await code(files.delete(file.id))).toMatchObject({ code: "not_found" });
    // Still stored until the reaper comes: hidden is not the same as removed.
    expect(await store.head(file.storageKey)).toEqual({ bytes: 10 });
    expect((await files.get(other.id)).id).toBe(other.id);
  });

  it("an `after` cursor naming an expired file still pages on from its place, without it", async () => {
    const made: FileRecord[] = [];
    for (let i = 0; i < 5; i++) {
      clock.t += 1;
      made.push(await upload(i === 2 ? HOUR : undefined));
    }
    const [a, b, expiring, d, e] = made as [FileRecord, FileRecord, FileRecord, FileRecord, FileRecord];
    clock.t = expiring.expiresAt!;
    const mine = new Set(made.map((f) => f.id));
    const after = async (id: string, order: "asc" | "desc") =>
      (await listedIds({ after: id, order })).filter((x) => mine.has(x));
    expect(await after(expiring.id, "desc")).toEqual([b.id, a.id]);
    expect(await after(expiring.id, "asc")).toEqual([d.id, e.id]);
    expect(await after(b.id, "asc")).toEqual([d.id, e.id]);
    // Paging one at a time walks past it.
    const walked: string[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await files.list({ limit: 1, order: "asc", after: cursor });
      walked.push(...page.data.map((f) => f.id).filter((x) => mine.has(x)));
      if (!page.hasMore) break;
      cursor = page.lastId!;
    }
    expect(walked).toEqual([a.id, b.id, d.id, e.id]);

    // Once the reaper has removed it, the cursor still works (its place is remembered).
    const reaper = new Reaper({ files: metadata.files, uploads: metadata.uploads, store, clock, intervalSeconds: 0, batchSize: 1000 });
    const reaped = await reaper.runOnce();
    expect(reaped.files.reaped).toBeGreaterThanOrEqual(1);
    expect(await store.head(expiring.storageKey)).toBeUndefined();
    expect(await after(expiring.id, "desc")).toEqual([b.id, a.id]);
    expect(await code(files.get(expiring.id))).toMatchObject({ code: "not_found" });
  });

  it("reaps expired files (object, then row) and expired pending uploads with their parts; leaves the rest", async () => {
    const expiring = await upload(HOUR);
    const batch = await upload(undefined, "batch"); // the built-in default: 30 days
    const forever = await upload(undefined, "user_data");
    const created = await uploads.create({ filename: "big.bin", purpose: "batch", bytes: 20 });
    const parts = [await uploads.addPart(created.upload.id, bytes("0123456789")), await uploads.addPart(created.upload.id, bytes("abcdefghij"))];
    expect(batch.expiresAt).toBe(batch.createdAt + 2_592_000);

    const reaper = new Reaper({ files: metadata.files, uploads: metadata.uploads, store, clock, intervalSeconds: 0, batchSize: 1000 });
    clock.t += HOUR;
    const summary = await reaper.runOnce();
    expect(summary.files.failed).toBe(0);
    expect(summary.uploads).toMatchObject({ expired: 1, partsRemoved: 2, failed: 0 });
    expect(await store.head(expiring.storageKey)).toBeUndefined();
    expect(await metadata.files.position(expiring.id)).toEqual({ createdAt: expiring.createdAt, id: expiring.id, ownerPrincipal: null });
    expect(await metadata.files.findById(expiring.id, 0)).toBeUndefined(); // the row is gone, not only hidden
    for (const part of parts) expect(await store.head(part.storageKey)).toBeUndefined();
    expect(await metadata.uploads.listParts(created.upload.id)).toEqual([]);
    expect((await metadata.uploads.findUpload(created.upload.id))?.status).toBe("expired");
    for (const kept of [batch, forever]) {
      expect((await files.get(kept.id)).id).toBe(kept.id);
      expect(await store.head(kept.storageKey)).toEqual({ bytes: 10 });
    }

    clock.t = batch.expiresAt!;
    await reaper.runOnce();
    expect(await store.head(batch.storageKey)).toBeUndefined();
    expect(await metadata.files.findById(batch.id, 0)).toBeUndefined();
    expect((await files.get(forever.id)).id).toBe(forever.id);
  });

  it("reaps an upload a dead process left completing, once it is STALE_COMPLETING_SECONDS past its expiry", async () => {
    const stuck = await uploads.create({ filename: "stuck.bin", purpose: "batch", bytes: 20 });
    const parts = [await uploads.addPart(stuck.upload.id, bytes("0123456789")), await uploads.addPart(stuck.upload.id, bytes("abcdefghij"))];
    // A complete that was in flight when its process died leaves exactly this.
    expect(await metadata.uploads.transition(stuck.upload.id, "pending", "completing")).toBe(true);
    // Another one, ten minutes younger: still within its grace when the first is reaped.
    clock.t += 600;
    const younger = await uploads.create({ filename: "younger.bin", purpose: "batch", bytes: 10 });
    const youngerPart = await uploads.addPart(younger.upload.id, bytes("klmnopqrst"));
    expect(await metadata.uploads.transition(younger.upload.id, "pending", "completing")).toBe(true);
    const reaper = new Reaper({ files: metadata.files, uploads: metadata.uploads, store, clock, intervalSeconds: 0, batchSize: 1000 });

    // Well past its expiry, but a complete may still be running: it is left alone.
    clock.t = stuck.upload.expiresAt + STALE_COMPLETING_SECONDS - 1;
    expect((await reaper.runOnce()).uploads).toMatchObject({ claimed: 0, expired: 0, partsRemoved: 0 });
    expect((await metadata.uploads.findUpload(stuck.upload.id))?.status).toBe("completing");

    clock.t = stuck.upload.expiresAt + STALE_COMPLETING_SECONDS;
    expect((await reaper.runOnce()).uploads).toMatchObject({ claimed: 1, expired: 1, partsRemoved: 2, failed: 0 });
    for (const part of parts) expect(await store.head(part.storageKey)).toBeUndefined();
    expect(await metadata.uploads.listParts(stuck.upload.id)).toEqual([]);
    expect((await metadata.uploads.findUpload(stuck.upload.id))?.status).toBe("expired");
    expect(await code(uploads.complete(stuck.upload.id, parts.map((p) => p.id)))).toEqual({ code: "conflict", param: "upload_id" });
    // The younger one is untouched.
    expect((await metadata.uploads.findUpload(younger.upload.id))?.status).toBe("completing");
    expect(await store.head(youngerPart.storageKey)).toEqual({ bytes: 10 });
  });
});
