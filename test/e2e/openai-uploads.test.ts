/**
 * OpenAI's Uploads API (/v1/uploads) through the official `openai` SDK against the real server
 * on S3 (moto) with SQLite: parts of any size, in any order and in parallel, assembled in the
 * order `part_ids` names; the checks complete makes; cancel, expiry and the limits; and that no
 * part object outlives its upload.
 */
import { createHash, randomBytes } from "node:crypto";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

const KiB = 1024;
const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Well-formed ids that name nothing. */
const unknownUploadId = () => `upload_${randomBytes(16).toString("hex")}`;
const unknownPartId = () => `part_${randomBytes(16).toString("hex")}`;

type ApiError = InstanceType<typeof OpenAI.APIError>;

/** The SDK error of a call that must fail; fails the test if it succeeds or fails otherwise. */
async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => {
      throw new Error("expected the request to fail");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  return err as ApiError;
}

function sdkClient(server: ServerProcess): OpenAI {
  // No retries: a 409 or 413 must surface as is, not be retried into something else.
  return new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
}

async function create(client: OpenAI, bytes: number, filename = "upload.bin", purpose: "batch" | "assistants" | "user_data" = "batch") {
  return await client.uploads.create({ bytes, filename, purpose, mime_type: "application/octet-stream" });
}

async function addPart(client: OpenAI, uploadId: string, data: Buffer) {
  return await client.uploads.parts.create(uploadId, { data: await toFile(data, "part") });
}

/** Adds `parts` one after the other and returns their ids in the same order. */
async function addParts(client: OpenAI, uploadId: string, parts: Buffer[]): Promise<string[]> {
  const ids: string[] = [];
  for (const p of parts) ids.push((await addPart(client, uploadId, p)).id);
  return ids;
}

async function content(client: OpenAI, fileId: string): Promise<Buffer> {
  return Buffer.from(await (await client.files.content(fileId)).arrayBuffer());
}

/** GET /v1/uploads/{id}: not in the SDK (OpenAI has no such route), so by hand. */
async function retrieveUpload(server: ServerProcess, id: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.baseUrl}/v1/uploads/${id}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A refused request must leave the server serving (the afterAll exit code would say so only at the end). */
async function expectServing(server: ServerProcess): Promise<void> {
  const res = await fetch(`${server.baseUrl}/healthz`).catch(async (err: Error) => {
    await sleep(200); // let the dying process's last words reach `output`
    throw new Error(`the server stopped serving (${String(err.cause ?? err)}); its last output:\n${server.output.slice(-15).join("\n")}`);
  });
  expect(res.status).toBe(200);
}

async function fileIds(client: OpenAI): Promise<string[]> {
  const ids: string[] = [];
  for await (const f of client.files.list({ limit: 100 })) ids.push(f.id);
  return ids.sort();
}

describe("uploads with the default settings", () => {
  let server: ServerProcess;
  let bucket: string;
  let client: OpenAI;

  /** The part objects of one upload still in the bucket. */
  const partKeys = (uploadId: string) => listAllKeys(bucket, `uploads/${uploadId}/`);
  /** File objects: everything outside uploads/. */
  const fileKeys = async () => (await listAllKeys(bucket)).filter((k) => !k.startsWith("uploads/")).sort();

  beforeAll(async () => {
    bucket = await createTestBucket("openai-uploads");
    const dir = await tempDir("openai-uploads");
    // 5 MiB S3 parts: files over 5 MiB are assembled by a multipart upload, smaller ones by a single put.
    server = await startServer({
      config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }, { part_size_bytes: 5 * MiB }),
    });
    client = sdkClient(server);
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("creates a pending upload that expires after an hour and has no file yet", async () => {
    const upload = await create(client, 1234, "notes.jsonl", "assistants");
    expect(upload).toMatchObject({ object: "upload", status: "pending", bytes: 1234, filename: "notes.jsonl", purpose: "assistants", file: null });
    expect(upload.id).toMatch(/^upload_[0-9a-f]{32}$/);
    expect(upload.expires_at).toBe(upload.created_at + 3600);
    expect(Math.abs(upload.created_at - Date.now() / 1000)).toBeLessThan(60);
    const got = await retrieveUpload(server, upload.id);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(upload);
  });

  it("assembles parts smaller than 5 MiB into a processed file with exactly their bytes", async () => {
    const parts = [randomBytes(MiB), randomBytes(MiB), randomBytes(MiB), randomBytes(300 * KiB)];
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "small-parts.bin", "user_data");

    const partIds: string[] = [];
    for (const p of parts) {
      const part = await addPart(client, upload.id, p);
      expect(part).toMatchObject({ object: "upload.part", upload_id: upload.id });
      expect(part.id).toMatch(/^part_[0-9a-f]{32}$/);
      partIds.push(part.id);
    }
    expect((await partKeys(upload.id)).sort()).toEqual(partIds.map((id) => `uploads/${upload.id}/${id}`).sort());

    const done = await client.uploads.complete(upload.id, { part_ids: partIds });
    expect(done).toMatchObject({ id: upload.id, object: "upload", status: "completed", bytes: whole.length });
    expect(done.file).toMatchObject({
      object: "file",
      bytes: whole.length,
      filename: "small-parts.bin",
      purpose: "user_data",
      status: "processed",
    });
    const file = done.file!;
    expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(await client.files.retrieve(file.id)).toEqual(file);
    expect(sha256(await content(client, file.id))).toBe(sha256(whole));

    // Parts are gone once they are in the file, and the assembly left no multipart upload open.
    expect(await partKeys(upload.id)).toEqual([]);
    expect((await listAllKeys(bucket, "uploads/")).filter((k) => k.includes(upload.id))).toEqual([]);
    expect(await listMultipartUploads(bucket)).toEqual([]);

    // Completing again answers with the same result (a client may retry a lost answer).
    const again = await client.uploads.complete(upload.id, { part_ids: partIds });
    expect(again).toMatchObject({ status: "completed", file: { id: file.id } });
  });

  it("assembles parts of 5 MiB and more (a multipart file) and leaves no part or multipart upload", async () => {
    const parts = [randomBytes(6 * MiB), randomBytes(5 * MiB), randomBytes(2 * MiB)];
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "big-parts.bin");
    const partIds = await addParts(client, upload.id, parts);

    const done = await client.uploads.complete(upload.id, { part_ids: partIds });
    expect(done.status).toBe("completed");
    expect(done.file).toMatchObject({ bytes: whole.length, filename: "big-parts.bin", purpose: "batch", status: "processed" });
    expect(sha256(await content(client, done.file!.id))).toBe(sha256(whole));

    expect((await listAllKeys(bucket, "uploads/")).filter((k) => k.includes(upload.id))).toEqual([]);
    expect(await listMultipartUploads(bucket)).toEqual([]);
  });

  it("takes parts sent in parallel and out of order, and assembles them in part_ids order", async () => {
    // Different sizes, so a part in the wrong place changes the content and not just the hash.
    const parts = Array.from({ length: 8 }, (_, i) => randomBytes(512 * KiB + i * 4099));
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "parallel.bin");

    const shuffled = [3, 7, 0, 5, 1, 6, 2, 4];
    const ids = new Array<string>(parts.length);
    await Promise.all(
      shuffled.map(async (i) => {
        ids[i] = (await addPart(client, upload.id, parts[i]!)).id;
      }),
    );
    expect(new Set(ids).size).toBe(parts.length);

    const done = await client.uploads.complete(upload.id, { part_ids: ids });
    expect(done.status).toBe("completed");
    const got = await content(client, done.file!.id);
    expect(got.length).toBe(whole.length);
    expect(sha256(got)).toBe(sha256(whole));
  });

  it("orders the file by part_ids, not by the order the parts arrived in", async () => {
    const [a, b, c] = [randomBytes(100 * KiB), randomBytes(200 * KiB), randomBytes(300 * KiB)];
    const upload = await create(client, a.length + b.length + c.length, "reordered.bin");
    const [idA, idB, idC] = await addParts(client, upload.id, [a, b, c]);

    const done = await client.uploads.complete(upload.id, { part_ids: [idC!, idA!, idB!] });
    expect(done.status).toBe("completed");
    expect(sha256(await content(client, done.file!.id))).toBe(sha256(Buffer.concat([c, a, b])));
  });

  it("refuses parts that do not add up to bytes, and the upload can still be completed", async () => {
    const parts = [randomBytes(MiB), randomBytes(500 * KiB)];
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "total.bin");
    const [first, second] = await addParts(client, upload.id, parts);
    const filesBefore = await fileIds(client);

    const short = await apiError(client.uploads.complete(upload.id, { part_ids: [first!] }));
    expect(short).toBeInstanceOf(OpenAI.BadRequestError);
    expect(short.param).toBe("part_ids");
    expect(short.message).toMatch(/add up to 1048576 bytes/);

    // A third part takes the total past bytes.
    const extra = (await addPart(client, upload.id, randomBytes(KiB))).id;
    const long = await apiError(client.uploads.complete(upload.id, { part_ids: [first!, second!, extra] }));
    expect(long).toBeInstanceOf(OpenAI.BadRequestError);
    expect(long.param).toBe("part_ids");

    expect((await retrieveUpload(server, upload.id)).body).toMatchObject({ status: "pending", file: null });
    expect(await fileIds(client)).toEqual(filesBefore);

    const done = await client.uploads.complete(upload.id, { part_ids: [first!, second!] });
    expect(done.status).toBe("completed");
    expect(sha256(await content(client, done.file!.id))).toBe(sha256(whole));
    // The part that was never named goes too.
    expect(await partKeys(upload.id)).toEqual([]);
  });

  // Parts under 5 MiB stream through the server into a new multipart upload; a first part of 5 MiB
  // or more lets S3 copy the parts itself, and the server only reads the result back to hash it.
  it.each([
    ["streamed through the server", [4 * MiB, 3 * MiB]],
    ["copied inside S3", [6 * MiB, 2 * MiB]],
  ])("checks md5 (%s): a wrong one creates no file and leaves the upload pending; the right one completes it", async (_how, sizes) => {
    // Over 5 MiB, so the refused assembly was a multipart upload that must have been aborted.
    const parts = sizes.map((n) => randomBytes(n));
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "md5.bin");
    const partIds = await addParts(client, upload.id, parts);
    const filesBefore = await fileIds(client);
    const objectsBefore = await fileKeys();

    const wrong = await apiError(client.uploads.complete(upload.id, { part_ids: partIds, md5: md5(Buffer.from("something else")) }));
    expect(wrong).toBeInstanceOf(OpenAI.BadRequestError);
    expect(wrong.param).toBe("md5");
    expect(await fileIds(client)).toEqual(filesBefore);
    expect(await fileKeys()).toEqual(objectsBefore);
    await eventually(async () => expect(await listMultipartUploads(bucket)).toEqual([]));
    expect((await retrieveUpload(server, upload.id)).body).toMatchObject({ status: "pending", file: null });
    expect(await partKeys(upload.id)).toHaveLength(2);

    const done = await client.uploads.complete(upload.id, { part_ids: partIds, md5: md5(whole) });
    expect(done.status).toBe("completed");
    expect(done.file).toMatchObject({ bytes: whole.length, status: "processed" });
    expect(sha256(await content(client, done.file!.id))).toBe(sha256(whole));
    expect(await fileIds(client)).toEqual([...filesBefore, done.file!.id].sort());
  });

  it("answers 409 naming a part whose object has gone, when S3 would copy the parts; adding it again completes the upload", async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB)];
    const whole = Buffer.concat(parts);
    const upload = await create(client, whole.length, "lost-part.bin");
    const partIds = await addParts(client, upload.id, parts);
    const filesBefore = await fileIds(client);
    const objectsBefore = await fileKeys();
    const keys = await partKeys(upload.id);
    expect(keys).toHaveLength(3);
    const s3 = testS3Client();
    // Part objects are stored under uploads/<upload id>/<part id>.
    const lost = keys.find((k) => k.endsWith(`/${partIds[1]}`))!;
    expect(lost).toBeDefined();
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: lost }));

    const err = await apiError(client.uploads.complete(upload.id, { part_ids: partIds }));
    expect(err.status).toBe(409);
    expect(err.param).toBe("part_ids");
    expect(err.message).toMatch(/no longer in storage/);
    expect(await fileIds(client)).toEqual(filesBefore);
    expect(await fileKeys()).toEqual(objectsBefore);
    expect(await listMultipartUploads(bucket)).toEqual([]);
    expect((await retrieveUpload(server, upload.id)).body).toMatchObject({ status: "pending", file: null });

    const [again] = await addParts(client, upload.id, [parts[1]!]);
    const done = await client.uploads.complete(upload.id, { part_ids: [partIds[0]!, again!, partIds[2]!] });
    expect(done.status).toBe("completed");
    expect(sha256(await content(client, done.file!.id))).toBe(sha256(whole));
  });

  it("refuses unknown and duplicate part ids with 400 part_ids, and an unknown upload with 404", async () => {
    const parts = [randomBytes(10 * KiB), randomBytes(10 * KiB)];
    const upload = await create(client, 20 * KiB, "ids.bin");
    const [a, b] = await addParts(client, upload.id, parts);

    const unknown = await apiError(client.uploads.complete(upload.id, { part_ids: [a!, unknownPartId()] }));
    expect(unknown).toBeInstanceOf(OpenAI.BadRequestError);
    expect(unknown.param).toBe("part_ids");

    const duplicate = await apiError(client.uploads.complete(upload.id, { part_ids: [a!, a!] }));
    expect(duplicate).toBeInstanceOf(OpenAI.BadRequestError);
    expect(duplicate.param).toBe("part_ids");

    // A part of another upload is not a part of this one.
    const other = await create(client, 10 * KiB, "other.bin");
    const foreign = (await addPart(client, other.id, randomBytes(10 * KiB))).id;
    const stolen = await apiError(client.uploads.complete(upload.id, { part_ids: [a!, foreign] }));
    expect(stolen).toBeInstanceOf(OpenAI.BadRequestError);
    expect(stolen.param).toBe("part_ids");
    await client.uploads.cancel(other.id);

    const empty = await apiError(client.uploads.complete(upload.id, { part_ids: [] }));
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
    expect(empty.param).toBe("part_ids");

    for (const call of [
      (id: string) => client.uploads.complete(id, { part_ids: [a!, b!] }),
      (id: string) => addPart(client, id, randomBytes(KiB)),
      (id: string) => client.uploads.cancel(id),
    ]) {
      const missing = await apiError(call(unknownUploadId()));
      expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
      expect(missing.status).toBe(404);
      expect(missing.param).toBe("upload_id");
      await expectServing(server);
    }
    expect((await retrieveUpload(server, unknownUploadId())).status).toBe(404);

    // None of the refusals touched the upload.
    expect((await client.uploads.complete(upload.id, { part_ids: [a!, b!] })).status).toBe("completed");
  });

  it("cancel ends the upload: no more parts, no complete, and its part objects are gone", async () => {
    const parts = [randomBytes(MiB), randomBytes(MiB)];
    const upload = await create(client, 3 * MiB, "cancelled.bin");
    const partIds = await addParts(client, upload.id, parts);
    expect(await partKeys(upload.id)).toHaveLength(2);

    const cancelled = await client.uploads.cancel(upload.id);
    expect(cancelled).toMatchObject({ id: upload.id, object: "upload", status: "cancelled", file: null });

    const add = await apiError(addPart(client, upload.id, randomBytes(MiB)));
    expect(add).toBeInstanceOf(OpenAI.ConflictError);
    expect(add.status).toBe(409);
    expect(add.param).toBe("upload_id");
    await expectServing(server);
    const complete = await apiError(client.uploads.complete(upload.id, { part_ids: partIds }));
    expect(complete).toBeInstanceOf(OpenAI.ConflictError);
    expect(complete.status).toBe(409);

    expect(await partKeys(upload.id)).toEqual([]);
    expect((await retrieveUpload(server, upload.id)).body).toMatchObject({ status: "cancelled" });
    // Cancelling twice is not an error.
    expect((await client.uploads.cancel(upload.id)).status).toBe("cancelled");
  });

  it("answers a refused part with its error even while the client is still sending the body", async () => {
    // The server refuses a part for a cancelled upload before reading it. The answer must reach the
    // client as a 409, not be lost to a connection closed under the body still in flight (EPIPE/ECONNRESET).
    const upload = await create(client, 64 * MiB, "early-answer.bin");
    await client.uploads.cancel(upload.id);
    const part = randomBytes(4 * MiB);
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const err = await apiError(addPart(client, upload.id, part));
      outcomes.push(err.status === undefined ? `${err.constructor.name}: ${String((err.cause as Error | undefined)?.cause ?? err.cause)}` : String(err.status));
    }
    expect(outcomes).toEqual(Array(20).fill("409"));
    await expectServing(server);
  });

  describe("POST /v1/uploads by hand", () => {
    const post = (body: string, contentType: string) =>
      fetch(`${server.baseUrl}/v1/uploads`, { method: "POST", headers: { "content-type": contentType }, body });
    const valid = { bytes: 10, filename: "raw.bin", purpose: "batch", mime_type: "application/octet-stream" };

    it("answers 415 for a body that is not JSON", async () => {
      const res = await post(new URLSearchParams(Object.entries(valid).map(([k, v]) => [k, String(v)])).toString(), "application/x-www-form-urlencoded");
      expect(res.status).toBe(415);
      expect(res.headers.get("x-should-retry")).toBe("false");
      expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", message: expect.any(String) } });
    });

    it("answers 400 for invalid JSON", async () => {
      const res = await post("{ not json", "application/json");
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error" } });
    });

    it("answers 400 param filename without a filename", async () => {
      const { filename: _, ...noName } = valid;
      const res = await post(JSON.stringify(noName), "application/json");
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", param: "filename" } });
      // The same body with the filename is fine.
      const ok = await post(JSON.stringify(valid), "application/json; charset=utf-8");
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ object: "upload", status: "pending", filename: "raw.bin" });
    });
  });
});

describe("uploads with a 3 s expiry and small limits", () => {
  const MAX_PART = MiB;
  const MAX_UPLOAD = 10 * MiB;
  let server: ServerProcess;
  let bucket: string;
  let client: OpenAI;
  const partKeys = (uploadId: string) => listAllKeys(bucket, `uploads/${uploadId}/`);

  beforeAll(async () => {
    bucket = await createTestBucket("openai-uploads-limits");
    const dir = await tempDir("openai-uploads-limits");
    server = await startServer({
      config: {
        ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }),
        server: {
          uploads: { expire_after_seconds: 3 },
          limits: { max_part_bytes: MAX_PART, max_upload_bytes: MAX_UPLOAD },
        },
      },
    });
    client = sdkClient(server);
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("expires a pending upload: no more parts (409 'expired'), status expired, parts removed", async () => {
    const upload = await create(client, 2 * MiB, "expiring.bin");
    expect(upload.expires_at).toBe(upload.created_at + 3);
    const partId = (await addPart(client, upload.id, randomBytes(512 * KiB))).id;
    expect(await partKeys(upload.id)).toEqual([`uploads/${upload.id}/${partId}`]);

    await sleep(4_000);

    const late = await apiError(addPart(client, upload.id, randomBytes(512 * KiB)));
    expect(late).toBeInstanceOf(OpenAI.ConflictError);
    expect(late.status).toBe(409);
    expect(late.message).toMatch(/expired/);
    await expectServing(server);

    const got = await retrieveUpload(server, upload.id);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: upload.id, status: "expired", file: null });
    expect(await partKeys(upload.id)).toEqual([]);

    const complete = await apiError(client.uploads.complete(upload.id, { part_ids: [partId] }));
    expect(complete).toBeInstanceOf(OpenAI.ConflictError);
  });

  it("refuses a part over max_part_bytes with 413 param data, and an empty part with 400", async () => {
    const upload = await create(client, 4 * MiB, "parts.bin");

    const big = await apiError(addPart(client, upload.id, randomBytes(2 * MiB)));
    expect(big.status).toBe(413);
    expect(big.param).toBe("data");
    await expectServing(server);

    const empty = await apiError(addPart(client, upload.id, Buffer.alloc(0)));
    expect(empty).toBeInstanceOf(OpenAI.BadRequestError);
    expect(empty.param).toBe("data");

    // Neither left an object behind; a part of exactly max_part_bytes is fine.
    await eventually(async () => expect(await partKeys(upload.id)).toEqual([]));
    await addPart(client, upload.id, randomBytes(MAX_PART));
    expect(await partKeys(upload.id)).toHaveLength(1);
    await client.uploads.cancel(upload.id);
  });

  it("refuses bytes over max_upload_bytes at create with 413 param bytes", async () => {
    const tooBig = await apiError(create(client, MAX_UPLOAD + 1));
    expect(tooBig.status).toBe(413);
    expect(tooBig.param).toBe("bytes");
    expect((await create(client, MAX_UPLOAD)).status).toBe("pending");
  });
});
