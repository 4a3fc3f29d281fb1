import { createHash, randomBytes } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { FilesService } from "../../src/files/files-service.js";
import { FilesError } from "../../src/files/errors.js";
import type { Clock } from "../../src/files/ports.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { readAll } from "../support/test-helpers.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

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

describe("FilesService (in-memory adapters)", () => {
  let store: MemoryObjectStore;
  let repository: MemoryFileRepository;
  let clock: Clock & { t: number };
  let files: FilesService;
  const orphans: string[] = [];

  beforeEach(() => {
    store = new MemoryObjectStore();
    repository = new MemoryFileRepository();
    clock = { t: 1_700_000_000, now: () => clock.t };
    orphans.length = 0;
    files = new FilesService({ store, repository, clock, keyPrefix: "p/", maxFileBytes: 100_000, onOrphanedObject: (k) => orphans.push(k) });
  });

  const upload = (data: Uint8Array, extra: Partial<Parameters<FilesService["upload"]>[0]> = {}) =>
    files.upload({ filename: "a.jsonl", purpose: "batch", ...extra }, chunksOf(data));

  it("uploads, then gets, downloads and lists the file", async () => {
    const data = randomBytes(12_345);
    const file = await upload(data, { mimeType: "application/jsonl", expiresAfterSeconds: 3600 });
    expect(file).toMatchObject({
      filename: "a.jsonl",
      purpose: "batch",
      bytes: 12_345,
      createdAt: clock.t,
      expiresAt: clock.t + 3600,
      mimeType: "application/jsonl",
      sha256: sha256(data),
      storageKey: `p/${file.id}`,
      status: "processed",
    });
    expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(await files.get(file.id)).toEqual(file);
    expect(store.keys()).toEqual([`p/${file.id}`]);
    const download = await files.download(file.id);
    expect(sha256(await readAll(download.body))).toBe(sha256(data));
    expect((await files.list()).data.map((f) => f.id)).toEqual([file.id]);
  });

  it("defaults: octet-stream and no expiry", async () => {
    const file = await upload(new Uint8Array(0));
    expect(file).toMatchObject({ bytes: 0, mimeType: "application/octet-stream", expiresAt: null, sha256: sha256(new Uint8Array(0)) });
  });

  it.each([
    [{ purpose: "nonsense" }, "purpose", /not a known purpose/],
    [{ purpose: "batch_output" }, "purpose", /produced by the server/],
    [{ purpose: "" }, "purpose", /purpose is required/],
    [{ filename: "" }, "filename", /filename is required/],
    [{ filename: "a\nb" }, "filename", /control characters/],
    [{ filename: "é".repeat(128) }, "filename", /longer than 255 bytes/],
    [{ expiresAfterSeconds: 3599 }, "expires_after.seconds", /between 3600 and 2592000/],
    [{ expiresAfterSeconds: 2_592_001 }, "expires_after.seconds", /between 3600 and 2592000/],
    [{ mimeType: "not a type" }, "mime_type", /valid media type/],
    [{ sha256: "xyz" }, "sha256", /64 hex/],
    [{ sizeBytes: -1 }, "size_bytes", /non-negative/],
  ])("rejects bad metadata %o before storing anything", async (extra, param, message) => {
    const err = await failure(upload(randomBytes(10), extra));
    expect(err).toMatchObject({ code: "invalid_argument", param });
    expect(err.message).toMatch(message);
    expect(store.keys()).toEqual([]);
    expect(repository.rows.size).toBe(0);
  });

  it("verifies a declared size and SHA-256, storing nothing on a mismatch", async () => {
    const data = randomBytes(5000);
    await expect(upload(data, { sizeBytes: 5000, sha256: sha256(data).toUpperCase() })).resolves.toMatchObject({ bytes: 5000 });
    for (const [extra, param] of [
      [{ sizeBytes: 4999 }, "size_bytes"],
      [{ sizeBytes: 5001 }, "size_bytes"],
      [{ sha256: sha256(randomBytes(8)) }, "sha256"],
    ] as const) {
      const err = await failure(upload(data, extra));
      expect(err).toMatchObject({ code: "invalid_argument", param });
    }
    expect(store.keys()).toHaveLength(1);
    expect(repository.rows.size).toBe(1);
  });

  it("refuses content over the size limit, while streaming", async () => {
    const err = await failure(upload(randomBytes(100_001)));
    expect(err).toMatchObject({ code: "too_large" });
    const declared = await failure(upload(randomBytes(10), { sizeBytes: 200_000 }));
    expect(declared).toMatchObject({ code: "too_large", param: "size_bytes" });
    expect(store.keys()).toEqual([]);
    expect(repository.rows.size).toBe(0);
  });

  it("a body that fails mid-stream leaves no object and no row", async () => {
    async function* broken() {
      yield randomBytes(1000);
      throw new Error("client went away");
    }
    await expect(files.upload({ filename: "x", purpose: "assistants" }, broken())).rejects.toThrow("client went away");
    expect(store.keys()).toEqual([]);
    expect(repository.rows.size).toBe(0);
  });

  it("a cancel that arrives after the last byte, before the commit, leaves no object and no row", async () => {
    const controller = new AbortController();
    // The store finishes the write; the cancel lands between the write and the row.
    const put = store.put.bind(store);
    store.put = async (key, body, options) => {
      const stored = await put(key, body, { ...options, signal: undefined });
      controller.abort();
      return stored;
    };
    const err = await failure(files.upload({ filename: "x", purpose: "batch" }, chunksOf(randomBytes(100)), { signal: controller.signal }));
    expect(err.code).toBe("cancelled");
    expect(store.keys()).toEqual([]);
    expect(repository.rows.size).toBe(0);
  });

  it("a metadata insert failure removes the stored object", async () => {
    repository.failNextInsert = new Error("database is locked");
    const err = await failure(upload(randomBytes(100)));
    expect(err.code).toBe("unavailable");
    expect(err.message).not.toMatch(/locked/);
    expect(store.keys()).toEqual([]);
  });

  it("any metadata failure is unavailable, without the database's words", async () => {
    const { id } = await upload(randomBytes(10));
    const down = async () => {
      throw new Error("connect ECONNREFUSED 10.0.0.5:5432 select * from openai_files");
    };
    repository.findById = down;
    repository.list = down;
    for (const call of [() => files.get(id), () => files.list(), () => files.delete(id), () => files.download(id)]) {
      const err = await failure(call());
      expect(err.code).toBe("unavailable");
      expect(err.message).toBe("The metadata store is unavailable; try again later");
    }
  });

  it("a store failure surfaces as unavailable and records nothing", async () => {
    store.failNextPutAfterBytes(500);
    const err = await failure(upload(randomBytes(2000)));
    expect(err.code).toBe("unavailable");
    expect(repository.rows.size).toBe(0);
    expect(store.keys()).toEqual([]);
  });

  it("unknown and malformed ids are not found, and never reach the adapters", async () => {
    for (const id of ["file-00000000000000000000000000000000", "../../etc/passwd", "file-ABC", ""]) {
      expect(await failure(files.get(id))).toMatchObject({ code: "not_found" });
      expect(await failure(files.download(id))).toMatchObject({ code: "not_found" });
      expect(await failure(files.delete(id))).toMatchObject({ code: "not_found" });
    }
  });

  it("downloads ranges, clipped to the file", async () => {
    const data = randomBytes(1000);
    const { id } = await upload(data);
    const read = async (offset: number, length?: number) => readAll((await files.download(id, { offset, length })).body);
    expect(await read(0, 1)).toEqual(data.subarray(0, 1));
    expect(await read(10, 100)).toEqual(data.subarray(10, 110));
    expect(await read(999)).toEqual(data.subarray(999));
    expect(await read(900, 500)).toEqual(data.subarray(900));
    expect(await read(1000)).toEqual(Buffer.alloc(0));
    expect(await read(5, 0)).toEqual(Buffer.alloc(0));
    expect(await failure(files.download(id, { offset: 1001 }))).toMatchObject({ code: "out_of_range", param: "offset" });
    expect(await failure(files.download(id, { offset: -1 }))).toMatchObject({ code: "invalid_argument" });
  });

  it("an expired file is gone from get, download and list at once", async () => {
    const { id } = await upload(randomBytes(10), { expiresAfterSeconds: 3600 });
    clock.t += 3599;
    expect((await files.get(id)).id).toBe(id);
    clock.t += 1;
    expect(await failure(files.get(id))).toMatchObject({ code: "not_found" });
    expect(await failure(files.download(id))).toMatchObject({ code: "not_found" });
    expect((await files.list()).data).toEqual([]);
  });

  it("pages with an exact cursor when many files share one second", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 23; i++) {
      if (i % 10 === 0) clock.t += 1;
      ids.push((await upload(randomBytes(1), { purpose: i % 2 ? "batch" : "assistants" })).id);
    }
    for (const order of ["asc", "desc"] as const) {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await files.list({ limit: 4, order, after });
        seen.push(...page.data.map((f) => f.id));
        expect(page.firstId).toBe(page.data[0]?.id ?? null);
        expect(page.lastId).toBe(page.data.at(-1)?.id ?? null);
        if (!page.hasMore) break;
        after = page.lastId!;
      }
      const expected = [...repository.rows.values()]
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
        .map((f) => f.id);
      expect(seen).toEqual(order === "asc" ? expected : expected.reverse());
    }
    const batch = await files.list({ purpose: "batch", limit: 100 });
    expect(batch.data).toHaveLength(11);
    expect(batch.hasMore).toBe(false);
  });

  it("validates list parameters", async () => {
    expect(await failure(files.list({ limit: 0 }))).toMatchObject({ code: "invalid_argument", param: "limit" });
    expect(await failure(files.list({ limit: 10_001 }))).toMatchObject({ code: "invalid_argument", param: "limit" });
    expect(await failure(files.list({ purpose: "nope" }))).toMatchObject({ code: "invalid_argument", param: "purpose" });
    expect(await failure(files.list({ after: "file-00000000000000000000000000000000" }))).toMatchObject({ code: "invalid_argument", param: "after" });
    expect(await files.list({ limit: 10_000 })).toEqual({ data: [], hasMore: false, firstId: null, lastId: null });
  });

  it("deletes the row and the object; a failed object removal is reported, not hidden", async () => {
    const a = await upload(randomBytes(10));
    expect(await files.delete(a.id)).toEqual({ id: a.id, deleted: true });
    expect(store.keys()).toEqual([]);
    expect(await failure(files.get(a.id))).toMatchObject({ code: "not_found" });
    expect(await failure(files.delete(a.id))).toMatchObject({ code: "not_found" });

    const b = await upload(randomBytes(10));
    store.delete = async () => {
      throw new Error("S3 down");
    };
    await files.delete(b.id);
    expect(orphans).toEqual([b.storageKey]);
    expect(await failure(files.get(b.id))).toMatchObject({ code: "not_found" });
  });
});
