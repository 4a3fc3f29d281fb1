/**
 * The OpenAI Files REST API (/v1/files) through the official `openai` npm SDK, against the real
 * server on moto S3 with SQLite metadata: uploads, expiry, cursor pagination, filters, content,
 * deletion, the SDK's error classes, and no stray objects after a refused upload.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import OpenAI, { APIError } from "openai";
import type { FileObject } from "openai/resources/files";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, listAllKeys, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

let server: ServerProcess;
let bucket: string;
let dir: string;
let client: OpenAI;

beforeAll(async () => {
  bucket = await createTestBucket("openai-files");
  dir = await tempDir("openai-files");
  server = await startServer({
    config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }, { part_size_bytes: 5 * MiB }),
  });
  client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

/** Writes `data` to a new file in the test's temp dir and returns its path. */
async function localFile(name: string, data: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, data);
  return path;
}

/** The error a call must fail with; fails the test if it succeeds. */
async function apiError(promise: Promise<unknown>): Promise<APIError> {
  const err = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  return err as APIError;
}

/** Every file the server lists, across all pages. */
async function allFileIds(): Promise<string[]> {
  const ids: string[] = [];
  for await (const f of client.files.list({ limit: 100 })) ids.push(f.id);
  return ids;
}

describe("files.create", () => {
  it("streams a multi-MiB file from disk and answers with a processed File object", async () => {
    const data = randomBytes(5 * MiB + 12_345);
    const path = await localFile("stream.bin", data);
    const before = Math.floor(Date.now() / 1000);
    const file = await client.files.create({ file: createReadStream(path), purpose: "assistants" });
    expect(file).toMatchObject({
      object: "file",
      status: "processed",
      expires_at: null,
      bytes: data.length,
      filename: "stream.bin",
      purpose: "assistants",
    });
    expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(file.created_at).toBeGreaterThanOrEqual(before - 1);
    expect(file.created_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    // The bytes landed under the file's id (key_prefix is empty).
    expect(await listAllKeys(bucket, file.id)).toEqual([file.id]);
  });

  it("expires_after { anchor: created_at, seconds: 3600 } sets expires_at = created_at + 3600", async () => {
    const path = await localFile("expiring.txt", Buffer.from("expires in an hour\n"));
    const file = await client.files.create({
      file: createReadStream(path),
      purpose: "batch",
      expires_after: { anchor: "created_at", seconds: 3600 },
    });
    expect(file.expires_at).toBe(file.created_at + 3600);
    const again = await client.files.retrieve(file.id);
    expect(again.expires_at).toBe(file.created_at + 3600);
  });
});

describe("files.list pagination", () => {
  // A purpose no other test in this file uses, so the set of listed files is exactly ours.
  const PURPOSE = "user_data";
  const COUNT = 25;
  let created: FileObject[];

  beforeAll(async () => {
    const path = await localFile("small.txt", Buffer.from("small\n"));
    // Concurrently, so many share a created_at second and the id tie-break is exercised.
    created = await Promise.all(
      Array.from({ length: COUNT }, () => client.files.create({ file: createReadStream(path), purpose: PURPOSE })),
    );
    const seconds = new Set(created.map((f) => f.created_at));
    expect(seconds.size).toBeLessThan(COUNT); // at least one tie
  });

  const expected = (order: "asc" | "desc") => {
    const sorted = [...created].sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return (order === "asc" ? sorted : sorted.reverse()).map((f) => f.id);
  };

  it.each(["asc", "desc"] as const)("auto-paginates with limit 4, order %s: each file once, in order", async (order) => {
    const seen: string[] = [];
    let pages = 0;
    for await (const page of (await client.files.list({ limit: 4, order, purpose: PURPOSE })).iterPages()) {
      pages++;
      expect(page.data.length).toBeLessThanOrEqual(4);
      seen.push(...page.data.map((f) => f.id));
    }
    expect(pages).toBe(Math.ceil(COUNT / 4));
    expect(new Set(seen).size).toBe(seen.length); // no repeats
    expect(seen).toEqual(expected(order)); // no skips, exact order, exactly our set
  });

  it("the item iterator sees the same sequence", async () => {
    const seen: string[] = [];
    for await (const f of client.files.list({ limit: 4, order: "asc", purpose: PURPOSE })) seen.push(f.id);
    expect(seen).toEqual(expected("asc"));
  });

  it("a page reports has_more, first_id and last_id", async () => {
    const order = expected("desc");
    const page = await client.files.list({ limit: 2, purpose: PURPOSE });
    expect(page.data.map((f) => f.id)).toEqual(order.slice(0, 2));
    expect(page.has_more).toBe(true);
    expect(page.hasNextPage()).toBe(true);

    // The raw JSON, for the fields the SDK's CursorPage does not surface.
    const raw = await fetch(`${server.baseUrl}/v1/files?limit=2&purpose=${PURPOSE}`);
    expect(raw.status).toBe(200);
    expect(await raw.json()).toMatchObject({
      object: "list",
      first_id: order[0],
      last_id: order[1],
      has_more: true,
    });

    // The last page: has_more false.
    const tail = await fetch(`${server.baseUrl}/v1/files?limit=2&purpose=${PURPOSE}&after=${order[COUNT - 2]}`);
    const body = (await tail.json()) as { data: FileObject[]; first_id: string; last_id: string; has_more: boolean };
    expect(body.data.map((f) => f.id)).toEqual([order[COUNT - 1]]);
    expect(body).toMatchObject({ first_id: order[COUNT - 1], last_id: order[COUNT - 1], has_more: false });

    // An empty page: null ids.
    const empty = await fetch(`${server.baseUrl}/v1/files?purpose=${PURPOSE}&after=${order[COUNT - 1]}`);
    expect(await empty.json()).toEqual({ object: "list", data: [], first_id: null, last_id: null, has_more: false });
  });
});

describe("files.list purpose filter", () => {
  it("lists only files of the given purpose", async () => {
    const path = await localFile("filter.jsonl", Buffer.from('{"a":1}\n'));
    const vision = await client.files.create({ file: createReadStream(path), purpose: "vision" });
    const evals = await client.files.create({ file: createReadStream(path), purpose: "evals" });
    const visionIds: string[] = [];
    for await (const f of client.files.list({ purpose: "vision" })) {
      expect(f.purpose).toBe("vision");
      visionIds.push(f.id);
    }
    expect(visionIds).toEqual([vision.id]);
    const evalsIds: string[] = [];
    for await (const f of client.files.list({ purpose: "evals" })) evalsIds.push(f.id);
    expect(evalsIds).toEqual([evals.id]);
    // Unfiltered, both are there.
    const all = await allFileIds();
    expect(all).toEqual(expect.arrayContaining([vision.id, evals.id]));
  });
});

describe("retrieve, content, delete", () => {
  it("round-trips a file and removes it", async () => {
    const data = randomBytes(2 * MiB + 7);
    const path = await localFile("roundtrip.bin", data);
    const file = await client.files.create({ file: createReadStream(path), purpose: "fine-tune" });

    const retrieved = await client.files.retrieve(file.id);
    expect(retrieved).toEqual(file);

    const content = await client.files.content(file.id);
    expect(content.status).toBe(200);
    const bytes = new Uint8Array(await content.arrayBuffer());
    expect(bytes.length).toBe(data.length);
    expect(sha256(bytes)).toBe(createHash("sha256").update(data).digest("hex"));

    const deleted = await client.files.delete(file.id);
    expect(deleted).toEqual({ id: file.id, object: "file", deleted: true });
    expect(await listAllKeys(bucket, file.id)).toEqual([]);

    for (const call of [() => client.files.retrieve(file.id), () => client.files.content(file.id), () => client.files.delete(file.id)]) {
      const err = await apiError(call());
      expect(err).toBeInstanceOf(OpenAI.NotFoundError);
      expect(err.status).toBe(404);
      expect(err.type).toBe("invalid_request_error");
      expect(err.param).toBe("file_id");
    }
  });

  it("a malformed id is 404, not 400", async () => {
    const err = await apiError(client.files.retrieve("not-a-file-id"));
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.param).toBe("file_id");
  });
});

describe("client errors", () => {
  it("a wrong purpose is a BadRequestError on param purpose", async () => {
    const path = await localFile("bad-purpose.txt", Buffer.from("x"));
    for (const purpose of ["nonsense", "batch_output"]) {
      const err = await apiError(client.files.create({ file: createReadStream(path), purpose: purpose as "batch" }));
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err.status).toBe(400);
      expect(err.type).toBe("invalid_request_error");
      expect(err.param).toBe("purpose");
    }
  });

  it.each([
    ["limit=0", { limit: 0 }, "limit"],
    ["limit=10001", { limit: 10_001 }, "limit"],
    ["order=sideways", { order: "sideways" as "asc" }, "order"],
    ["an unknown after", { after: `file-${"0".repeat(32)}` }, "after"],
    ["a malformed after", { after: "nope" }, "after"],
    ["an unknown purpose filter", { purpose: "nonsense" }, "purpose"],
  ])("list with %s is a BadRequestError on its param", async (_name, query, param) => {
    const err = await apiError(client.files.list(query));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.status).toBe(400);
    expect(err.type).toBe("invalid_request_error");
    expect(err.param).toBe(param);
  });

  it("limit=10000 is accepted", async () => {
    const page = await client.files.list({ limit: 10_000 });
    expect(page.data.length).toBeGreaterThan(0);
  });

  it("a refused upload leaves no object beyond those of existing files", async () => {
    const data = randomBytes(3 * MiB);
    const path = await localFile("refused.bin", data);
    // `file` precedes `purpose` in this form, so the bytes are streamed to storage before the refusal.
    const err = await apiError(client.files.create({ file: createReadStream(path), purpose: "nope" as "batch" }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe("purpose");
    const ids = new Set(await allFileIds());
    const keys = await listAllKeys(bucket);
    expect(keys.filter((k) => !ids.has(k))).toEqual([]);
    expect(keys.length).toBe(ids.size);
  });
});

describe("deleting while paging", () => {
  // The common clean-up loop: the SDK asks for the page after the last file it saw, which the
  // loop has just deleted. The cursor must still place it, or the walk would fail or skip files.
  it("a list-and-delete loop over several pages removes every file", async () => {
    const created = await Promise.all(
      Array.from({ length: 11 }, (_, i) => client.files.create({ file: new File([`doomed ${i}`], `doomed-${i}.txt`), purpose: "fine-tune" })),
    );
    const seen: string[] = [];
    for await (const file of client.files.list({ purpose: "fine-tune", limit: 3 })) {
      seen.push(file.id);
      await client.files.delete(file.id);
    }
    expect(seen.sort()).toEqual(created.map((f) => f.id).sort());
    expect((await client.files.list({ purpose: "fine-tune" })).data).toEqual([]);
  });
});
