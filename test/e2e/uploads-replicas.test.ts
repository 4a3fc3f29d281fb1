import { createHash, randomBytes } from "node:crypto";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, listMultipartUploads, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

// Upload state lives in PostgreSQL, not in a process: behind a load balancer, every call of one
// upload may reach a different replica.
let replicas: ServerProcess[] = [];
let clients: OpenAI[] = [];
let bucket: string;

beforeAll(async () => {
  bucket = await createTestBucket("uploads-replicas");
  const url = await createTestDatabase("uploads_replicas");
  const config = s3ProviderConfig(testS3Endpoint(), bucket, { type: "postgres", url }, { part_size_bytes: 5 * MiB });
  replicas = await Promise.all([startServer({ config }), startServer({ config }), startServer({ config })]);
  clients = replicas.map((r) => new OpenAI({ apiKey: "test-key", baseURL: `${r.baseUrl}/v1`, maxRetries: 0 }));
});

afterAll(async () => {
  for (const r of replicas) expect(await r.stop()).toBe(0);
});

it("takes the parts of one upload on every replica, in parallel, and completes it on another", async () => {
  const pieces = Array.from({ length: 6 }, (_, i) => randomBytes(i % 2 ? 5 * MiB + 11 : 700 * 1024));
  const whole = Buffer.concat(pieces);
  const upload = await clients[0]!.uploads.create({ filename: "spread.bin", purpose: "batch", bytes: whole.length, mime_type: "application/octet-stream" });
  const parts = await Promise.all(
    pieces.map(async (data, i) => clients[i % 3]!.uploads.parts.create(upload.id, { data: await toFile(data, `part-${i}`) })),
  );
  const md5 = createHash("md5").update(whole).digest("hex");
  const done = await clients[1]!.uploads.complete(upload.id, { part_ids: parts.map((p) => p.id), md5 });
  expect(done.status).toBe("completed");

  const content = await clients[2]!.files.content(done.file!.id);
  expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(whole));
  // Each replica sees the same state, and no staged part or multipart upload is left behind.
  for (const client of clients) {
    expect((await client.files.retrieve(done.file!.id)).bytes).toBe(whole.length);
  }
  expect(await listAllKeys(bucket, `uploads/${upload.id}/`)).toEqual([]);
  expect(await listMultipartUploads(bucket)).toEqual([]);
});

it("a cancel on one replica stops parts and completes on the others", async () => {
  const upload = await clients[2]!.uploads.create({ filename: "stopped.bin", purpose: "batch", bytes: 10, mime_type: "text/plain" });
  const part = await clients[0]!.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("0123456789"), "p") });
  expect((await clients[1]!.uploads.cancel(upload.id)).status).toBe("cancelled");
  await expect(clients[0]!.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("x"), "p") })).rejects.toBeInstanceOf(OpenAI.ConflictError);
  await expect(clients[2]!.uploads.complete(upload.id, { part_ids: [part.id] })).rejects.toBeInstanceOf(OpenAI.ConflictError);
  expect(await listAllKeys(bucket, `uploads/${upload.id}/`)).toEqual([]);
});

it("of two completes racing on two replicas, one assembles the file and the other is told so", async () => {
  const data = randomBytes(6 * MiB);
  const upload = await clients[0]!.uploads.create({ filename: "race.bin", purpose: "batch", bytes: data.length, mime_type: "application/octet-stream" });
  const part = await clients[0]!.uploads.parts.create(upload.id, { data: await toFile(data, "p") });
  const results = await Promise.allSettled([
    clients[1]!.uploads.complete(upload.id, { part_ids: [part.id] }),
    clients[2]!.uploads.complete(upload.id, { part_ids: [part.id] }),
  ]);
  const won = results.filter((r) => r.status === "fulfilled");
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  expect(won.length).toBeGreaterThanOrEqual(1);
  for (const r of lost) expect(r.reason).toBeInstanceOf(OpenAI.ConflictError);
  // Whatever the interleaving, exactly one file came out of it.
  const files = [];
  for await (const f of clients[0]!.files.list({ purpose: "batch" })) if (f.filename === "race.bin") files.push(f);
  expect(files).toHaveLength(1);
});
