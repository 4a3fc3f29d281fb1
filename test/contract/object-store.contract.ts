/**
 * The one behavioural contract every ObjectStore passes (S3 on moto, local filesystem, memory).
 * Each store's test file calls `objectStoreContract` with a setup that builds a fresh store.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import type { FilesError } from "../../src/files/errors.js";
import type { IncompleteWrite, ObjectStore, StoredObject } from "../../src/files/ports.js";
import { readAll } from "../support/test-helpers.js";

const MiB = 1024 * 1024;

export interface ObjectStoreFixture {
  store: ObjectStore;
  /** Every key the store holds, temp files included where a store has them. */
  keysLeft(): Promise<string[]>;
  /** Multipart uploads still open, for stores that have them. */
  pendingMultipart?(): Promise<number>;
  /** The store's part size, so sizes can straddle part boundaries (default 5 MiB). */
  partSizeBytes?: number;
  /** Leaves a write to `key` unfinished, as a process killed mid-put would (outside the store's API). */
  makeIncomplete(key: string): Promise<void>;
}

/** Chunk sizes cycled through when streaming: tiny, odd, and larger than a part. */
const CHUNK_CYCLE = [1, 7, 64 * 1024, MiB + 3, 300_001, 6 * MiB];

/** Streams `data` as plain Uint8Array views (not Buffers) of varying sizes. */
async function* chunked(data: Uint8Array, cycle = CHUNK_CYCLE): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let i = 0; at < data.byteLength; i++) {
    const size = Math.min(cycle[i % cycle.length]!, data.byteLength - at);
    yield new Uint8Array(data.buffer, data.byteOffset + at, size);
    at += size;
    if (i % 8 === 0) await new Promise((r) => setImmediate(r)); // let other work interleave
  }
}

async function collect<T extends StoredObject | IncompleteWrite>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const newKey = (label: string) => `contract/${label}-${randomUUID()}`;
const PUT = { contentType: "application/octet-stream" } as const;

export function objectStoreContract(name: string, setup: () => Promise<ObjectStoreFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fx: ObjectStoreFixture;
    let part: number;

    beforeAll(async () => {
      fx = await setup();
      part = fx.partSizeBytes ?? 5 * MiB;
    });

    /** Asserts that a failed put left the store exactly as it was. */
    async function expectNothingLeft(before: string[], key: string): Promise<void> {
      const after = await fx.keysLeft();
      expect(after).not.toContain(key);
      expect(after.sort()).toEqual([...before].sort());
      if (fx.pendingMultipart) expect(await fx.pendingMultipart()).toBe(0);
    }

    it("answers ping", async () => {
      await expect(fx.store.ping()).resolves.toBeUndefined();
    });

    describe("round trips", () => {
      const cases: [string, (part: number) => number][] = [
        ["0 bytes", () => 0],
        ["1 byte", () => 1],
        ["exactly one part", (p) => p],
        ["one part + 1 byte", (p) => p + 1],
        ["several parts", (p) => 2 * p + 2 * MiB + 12_345],
      ];
      for (const [label, sizeOf] of cases) {
        it(`stores and returns ${label} intact`, async () => {
          const data = randomBytes(sizeOf(part));
          const key = newKey("rt");
          const put = await fx.store.put(key, chunked(data), { ...PUT, sizeHint: data.byteLength });
          expect(put).toEqual({ bytes: data.byteLength });
          expect(await fx.store.head(key)).toEqual({ bytes: data.byteLength });
          const back = await readAll(await fx.store.get(key, undefined));
          expect(back.byteLength).toBe(data.byteLength);
          expect(sha256(back)).toBe(sha256(data));
          if (data.byteLength > 0) {
            const ranged = await readAll(await fx.store.get(key, { offset: 0, length: data.byteLength }));
            expect(sha256(ranged)).toBe(sha256(data));
          }
          await fx.store.delete(key);
        });
      }

      it("stores a body without a size hint", async () => {
        const data = randomBytes(part + 100);
        const key = newKey("nohint");
        expect(await fx.store.put(key, chunked(data), PUT)).toEqual({ bytes: data.byteLength });
        expect(sha256(await readAll(await fx.store.get(key, undefined)))).toBe(sha256(data));
        await fx.store.delete(key);
      });
    });

    describe("ranges", () => {
      const size = 300_000;
      let data: Buffer;
      let key: string;
      beforeAll(async () => {
        data = randomBytes(size);
        key = newKey("range");
        await fx.store.put(key, chunked(data), { ...PUT, sizeHint: size });
      });
      const cases: [string, number, number][] = [
        ["the start", 0, 10],
        ["the middle", 1_000, 5_000],
        ["the last byte", size - 1, 1],
        ["from an offset to the end", 123_456, size - 123_456],
        ["a single middle byte", 150_000, 1],
      ];
      for (const [label, offset, length] of cases) {
        it(`reads ${label}`, async () => {
          const got = await readAll(await fx.store.get(key, { offset, length }));
          expect(got.byteLength).toBe(length);
          expect(got.equals(data.subarray(offset, offset + length))).toBe(true);
        });
      }

      it("clips a range that runs past the end", async () => {
        const got = await readAll(await fx.store.get(key, { offset: size - 10, length: 100 }));
        expect(got.equals(data.subarray(size - 10))).toBe(true);
      });

      it("rejects a range that starts past the end with out_of_range", async () => {
        await expect(fx.store.get(key, { offset: size, length: 1 })).rejects.toMatchObject({ code: "out_of_range" });
      });
    });

    describe("failed writes leave nothing behind", () => {
      it("rethrows the body's own error when it throws mid-stream, after more than one part", async () => {
        const before = await fx.keysLeft();
        const key = newKey("throws");
        const boom = new Error("client went away");
        const data = randomBytes(Math.floor(2.5 * part));
        async function* body() {
          yield* chunked(data);
          throw boom;
        }
        await expect(fx.store.put(key, body(), { ...PUT, sizeHint: 4 * part })).rejects.toBe(boom);
        await expectNothingLeft(before, key);
      });

      it("rethrows the body's error when it throws after its last byte (a checksum mismatch)", async () => {
        for (const size of [100, part + 1]) {
          const before = await fx.keysLeft();
          const key = newKey("late-throw");
          const mismatch = new Error("sha256 mismatch");
          const data = randomBytes(size);
          async function* body() {
            yield* chunked(data);
            throw mismatch;
          }
          await expect(fx.store.put(key, body(), { ...PUT, sizeHint: size })).rejects.toBe(mismatch);
          await expectNothingLeft(before, key);
        }
      });

      it("rethrows the body's error when it throws before any byte", async () => {
        const before = await fx.keysLeft();
        const key = newKey("early-throw");
        const early = new Error("no bytes at all");
        // eslint-disable-next-line require-yield
        async function* body(): AsyncGenerator<Uint8Array> {
          throw early;
        }
        await expect(fx.store.put(key, body(), PUT)).rejects.toBe(early);
        await expectNothingLeft(before, key);
      });

      it("rejects with the signal's reason when aborted mid-stream, after more than one part", async () => {
        const before = await fx.keysLeft();
        const key = newKey("abort");
        const controller = new AbortController();
        const reason = new Error("cancelled by the client");
        const block = randomBytes(256 * 1024);
        let sent = 0;
        // An endless body: only the abort can end this put.
        async function* body() {
          for (;;) {
            yield block;
            sent += block.byteLength;
            if (sent > 1.5 * part && !controller.signal.aborted) setImmediate(() => controller.abort(reason));
            await new Promise((r) => setImmediate(r));
          }
        }
        await expect(fx.store.put(key, body(), { ...PUT, signal: controller.signal })).rejects.toBe(reason);
        expect(sent).toBeGreaterThan(part);
        await expectNothingLeft(before, key);
      });

      it("rejects with the signal's reason when aborted while the body is stalled", async () => {
        const before = await fx.keysLeft();
        const key = newKey("stall");
        const controller = new AbortController();
        const reason = new Error("client stopped sending");
        const data = randomBytes(Math.floor(1.5 * part));
        async function* body() {
          yield* chunked(data);
          setTimeout(() => controller.abort(reason), 50);
          await new Promise(() => {}); // never sends another byte
        }
        await expect(fx.store.put(key, body(), { ...PUT, signal: controller.signal })).rejects.toBe(reason);
        await expectNothingLeft(before, key);
      });

      it("is all or nothing when the signal fires just as the body ends", async () => {
        for (const size of [1_000, part + 1]) {
          const before = await fx.keysLeft();
          const key = newKey("late-abort");
          const controller = new AbortController();
          const reason = new Error("cancelled at the last moment");
          const data = randomBytes(size);
          async function* body() {
            yield* chunked(data);
            // The body ends normally, but the caller gives up while the store finishes the write.
            setImmediate(() => controller.abort(reason));
          }
          const outcome = await fx.store.put(key, body(), { ...PUT, signal: controller.signal }).catch((e: unknown) => e);
          if (outcome === reason) {
            await expectNothingLeft(before, key);
          } else {
            // Finished before the abort: then the object must be whole.
            expect(outcome).toEqual({ bytes: size });
            expect(sha256(await readAll(await fx.store.get(key, undefined)))).toBe(sha256(data));
            await fx.store.delete(key);
          }
        }
      });

      it("rejects at once with the reason of an already aborted signal", async () => {
        const before = await fx.keysLeft();
        const key = newKey("pre-abort");
        const reason = new Error("gone before we started");
        await expect(
          fx.store.put(key, chunked(randomBytes(10)), { ...PUT, signal: AbortSignal.abort(reason) }),
        ).rejects.toBe(reason);
        await expectNothingLeft(before, key);
      });
    });

    describe("reads, heads and deletes", () => {
      it("rejects get of a missing key with not_found", async () => {
        const err = (await fx.store.get(newKey("missing"), undefined).catch((e: unknown) => e)) as FilesError;
        expect(err).toMatchObject({ name: "FilesError", code: "not_found" });
        expect(err.message).not.toContain("contract/");
        const ranged = fx.store.get(newKey("missing"), { offset: 0, length: 1 });
        await expect(ranged).rejects.toMatchObject({ code: "not_found" });
      });

      it("reports sizes with head, and undefined for a missing key", async () => {
        expect(await fx.store.head(newKey("missing"))).toBeUndefined();
        const key = newKey("head");
        await fx.store.put(key, chunked(randomBytes(4321)), PUT);
        expect(await fx.store.head(key)).toEqual({ bytes: 4321 });
        const empty = newKey("head-empty");
        await fx.store.put(empty, chunked(new Uint8Array(0)), PUT);
        expect(await fx.store.head(empty)).toEqual({ bytes: 0 });
        await fx.store.delete(key);
        await fx.store.delete(empty);
      });

      it("deletes idempotently", async () => {
        await expect(fx.store.delete(newKey("never-existed"))).resolves.toBeUndefined();
        const key = newKey("delete");
        await fx.store.put(key, chunked(randomBytes(10)), PUT);
        await fx.store.delete(key);
        await fx.store.delete(key);
        expect(await fx.store.head(key)).toBeUndefined();
        await expect(fx.store.get(key, undefined)).rejects.toMatchObject({ code: "not_found" });
        expect(await fx.keysLeft()).not.toContain(key);
      });

      it("deletes many keys at once where it can, missing ones included, and nothing else", async () => {
        if (!fx.store.deleteMany) return; // optional: callers delete one key at a time
        const keys = [newKey("many-a"), newKey("many-b"), newKey("many-c")];
        for (const key of keys) await fx.store.put(key, chunked(randomBytes(10)), PUT);
        expect(await fx.store.deleteMany([keys[0]!, keys[1]!, newKey("many-never-existed")])).toEqual([]);
        expect(await fx.store.head(keys[0]!)).toBeUndefined();
        expect(await fx.store.head(keys[1]!)).toBeUndefined();
        expect(await fx.store.head(keys[2]!)).toEqual({ bytes: 10 });
        expect(await fx.store.deleteMany([])).toEqual([]);
        await fx.store.delete(keys[2]!);
      });

      it("stops a download when its signal aborts", async () => {
        const key = newKey("get-abort");
        await fx.store.put(key, chunked(randomBytes(3 * MiB)), PUT);
        const controller = new AbortController();
        const reason = new Error("reader went away");
        const body = await fx.store.get(key, undefined, controller.signal);
        let received = 0;
        const reading = (async () => {
          for await (const chunk of body) {
            received += chunk.byteLength;
            controller.abort(reason);
          }
        })();
        await expect(reading).rejects.toBe(reason);
        expect(received).toBeLessThan(3 * MiB);
        await expect(fx.store.get(key, undefined, controller.signal)).rejects.toBe(reason);
        await fx.store.delete(key);
      });
    });

    describe("listing (for consistency checks)", () => {
      it("lists exactly the objects under a prefix, with their sizes and times", async () => {
        const base = `contract/list-${randomUUID()}/`;
        const sizes: Record<string, number> = { [`${base}a`]: 0, [`${base}b/c`]: 1, [`${base}b/d/e`]: 1000, [`${base}z`]: 12_345 };
        // Shares the prefix as a string but not as a folder: never listed under it.
        const sibling = `${base.slice(0, -1)}x/a`;
        const started = nowSeconds();
        for (const [key, size] of [...Object.entries(sizes), [sibling, 3] as const]) {
          await fx.store.put(key, chunked(randomBytes(size)), PUT);
        }
        const listed = await collect(fx.store.list(base));
        expect(listed.map((o) => o.key).sort()).toEqual(Object.keys(sizes).sort());
        for (const o of listed) {
          expect(o.bytes).toBe(sizes[o.key]);
          expect(o.lastModified).toBeGreaterThanOrEqual(started - 60);
          expect(o.lastModified).toBeLessThanOrEqual(nowSeconds() + 60);
        }
        const keys = async (prefix: string) => (await collect(fx.store.list(prefix))).map((o) => o.key).sort();
        expect(await keys(`${base}b/`)).toEqual([`${base}b/c`, `${base}b/d/e`]);
        expect(await keys(`${base}b`)).toEqual([`${base}b/c`, `${base}b/d/e`]); // a prefix may end mid-name
        expect(await keys(`${base}nothing/`)).toEqual([]);
        expect(await keys("")).toEqual(expect.arrayContaining([...Object.keys(sizes), sibling]));

        await fx.store.delete(`${base}z`);
        expect(await keys(base)).not.toContain(`${base}z`);
        for (const key of [...Object.keys(sizes), sibling]) await fx.store.delete(key);
        expect(await keys(base)).toEqual([]);
      });

      it("lists an unfinished write apart from the objects, and aborts it", async () => {
        const base = `contract/incomplete-${randomUUID()}/`;
        const key = `${base}${randomUUID()}`;
        const started = nowSeconds();
        await fx.makeIncomplete(key);
        const found = await collect(fx.store.listIncomplete(base));
        expect(found).toHaveLength(1);
        const write = found[0]!;
        // A store that does not record the key (local temp files) lists its writes for any prefix.
        if (write.key !== null) {
          expect(write.key).toBe(key);
          expect(await collect(fx.store.listIncomplete(`contract/elsewhere-${randomUUID()}/`))).toEqual([]);
        }
        expect(write.lastModified).toBeGreaterThanOrEqual(started - 60);
        expect(write.lastModified).toBeLessThanOrEqual(nowSeconds() + 60);
        expect(await collect(fx.store.list(base))).toEqual([]);
        expect(await fx.store.head(key)).toBeUndefined();

        await fx.store.abortIncomplete(write);
        expect(await collect(fx.store.listIncomplete(base))).toEqual([]);
        await expect(fx.store.abortIncomplete(write)).resolves.toBeUndefined();
        if (fx.pendingMultipart) expect(await fx.pendingMultipart()).toBe(0);
        expect(await fx.keysLeft()).not.toContain(key);
      });
    });
  });
}
