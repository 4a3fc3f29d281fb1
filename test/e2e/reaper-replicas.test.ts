/**
 * The background reaper with two replicas on one PostgreSQL database and one bucket: every expired
 * file is reaped exactly once (the replicas' files_reaped_total add up to the number of files),
 * unexpired files stay, and pending uploads past their expiry are expired with their parts removed.
 * Time moves by editing expires_at in the database, as if the files had simply grown old.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { CreateMultipartUploadCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, listMultipartUploads, testS3Client, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually } from "../support/test-helpers.js";

interface PgClient {
  connect(): Promise<void>;
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  end(): Promise<void>;
}
const { Client } = createRequire(import.meta.url)("pg") as { Client: new (config: { connectionString: string }) => PgClient };

const FILES = 40;
const BATCH_SIZE = 7;
let replicas: ServerProcess[] = [];
let clients: OpenAI[] = [];
let bucket: string;
let db: PgClient;

const nowSeconds = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  bucket = await createTestBucket("reaper-replicas");
  const url = await createTestDatabase("reaper_replicas");
  const config = s3ProviderConfig(testS3Endpoint(), bucket, { type: "postgres", url }, { reaper: { interval_seconds: 1, batch_size: BATCH_SIZE } });
  replicas = await Promise.all([startServer({ config }), startServer({ config })]);
  clients = replicas.map((r) => new OpenAI({ apiKey: "test-key", baseURL: `${r.baseUrl}/v1`, maxRetries: 0 }));
  db = new Client({ connectionString: url });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  for (const r of replicas) expect(await r.stop()).toBe(0);
});

/** A counter's value from a replica's /metrics. */
async function counter(replica: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`${replica.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`${name} not in /metrics`);
  return Number(line.split(" ")[1]);
}

async function total(name: string): Promise<number> {
  return (await Promise.all(replicas.map((r) => counter(r, name)))).reduce((a, b) => a + b, 0);
}

/** The replicas' "reap batch" log lines. */
function reapBatches(): { files: { claimed: number; reaped: number }; uploads: { claimed: number } }[] {
  return replicas
    .flatMap((r) => r.output)
    .filter((line) => line.includes('"reap batch"'))
    .map((line) => JSON.parse(line) as { files: { claimed: number; reaped: number }; uploads: { claimed: number } });
}

it("reaps each expired file exactly once across both replicas, and leaves the others alone", async () => {
  const upload = async (i: number) =>
    clients[i % 2]!.files.create({ file: await toFile(randomBytes(100 + i), `f-${i}.bin`), purpose: "assistants" });
  const doomed = [];
  for (let i = 0; i < FILES; i += 8) doomed.push(...(await Promise.all(Array.from({ length: Math.min(8, FILES - i) }, (_, j) => upload(i + j)))));
  const kept = await Promise.all([0, 1, 2, 3, 4].map((i) => upload(100 + i)));
  const kept30Days = await clients[1]!.files.create({ file: await toFile(Buffer.from("b"), "b.jsonl"), purpose: "batch" });
  expect(kept30Days.expires_at).toBe(kept30Days.created_at + 2_592_000);
  const doomedIds = doomed.map((f) => f.id);
  expect(new Set(doomedIds).size).toBe(FILES);
  expect((await listAllKeys(bucket)).filter((k) => doomedIds.includes(k))).toHaveLength(FILES);
  expect(await total("files_reaped_total")).toBe(0);

  // They expire now.
  const { rowCount } = await db.query(`update openai_files set expires_at = $1 where id = any($2)`, [nowSeconds() - 1, doomedIds]);
  expect(rowCount).toBe(FILES);
  // Gone at once for clients, whether or not the reaper has come by yet.
  await expect(clients[0]!.files.retrieve(doomedIds[0]!)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  await expect(clients[1]!.files.content(doomedIds[1]!)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  await expect(clients[0]!.files.delete(doomedIds[2]!)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  const listed: string[] = [];
  for await (const f of clients[1]!.files.list({ limit: 10 })) listed.push(f.id);
  expect(listed.filter((id) => doomedIds.includes(id))).toEqual([]);

  // Then the reapers remove objects and rows.
  await eventually(async () => {
    expect((await listAllKeys(bucket)).filter((k) => doomedIds.includes(k))).toEqual([]);
    expect((await db.query(`select id from openai_files where id = any($1)`, [doomedIds])).rows).toEqual([]);
  }, 60_000);
  // Each file once: no replica counted a file the other had already reaped.
  await eventually(async () => expect(await total("files_reaped_total")).toBe(FILES));
  // No pass took more than batch_size files, and the passes' log lines add up too.
  await eventually(async () => {
    const batches = reapBatches().filter((b) => b.files.claimed > 0);
    expect(batches.reduce((sum, b) => sum + b.files.reaped, 0)).toBe(FILES);
    expect(batches.length).toBeGreaterThanOrEqual(Math.ceil(FILES / BATCH_SIZE));
    for (const b of batches) expect(b.files.claimed).toBeLessThanOrEqual(BATCH_SIZE);
  });

  // The unexpired files are untouched, on both replicas.
  const keys = await listAllKeys(bucket);
  for (const f of [...kept, kept30Days]) {
    expect(keys).toContain(f.id);
    for (const client of clients) expect((await client.files.retrieve(f.id)).id).toBe(f.id);
  }
  // The reaped files' list positions are remembered: an `after` cursor naming one still pages, on
  // from exactly its (created_at, id) position (uploads share seconds, so ids break the ties).
  const cursor = doomed[5]!;
  const page = await clients[0]!.files.list({ after: cursor.id, limit: 100, order: "asc" });
  const after = (f: { created_at: number; id: string }) => f.created_at > cursor.created_at || (f.created_at === cursor.created_at && f.id > cursor.id);
  const expected = [...kept, kept30Days].filter(after).sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : 1));
  expect(page.data.map((f) => f.id)).toEqual(expected.map((f) => f.id));
  expect(await total("files_reaped_total")).toBe(FILES);
});

it("expires a pending upload whose expiry has passed and removes its parts; clears parts a crash left on a cancelled upload", async () => {
  const uploadsBefore = await total("files_reaped_uploads_total");
  const client = clients[0]!;
  const pending = await client.uploads.create({ bytes: 20, filename: "late.bin", mime_type: "application/octet-stream", purpose: "batch" });
  await client.uploads.parts.create(pending.id, { data: await toFile(randomBytes(10), "p1") });
  await clients[1]!.uploads.parts.create(pending.id, { data: await toFile(randomBytes(5), "p2") });
  const live = await client.uploads.create({ bytes: 4, filename: "live.bin", mime_type: "text/plain", purpose: "batch" });
  await client.uploads.parts.create(live.id, { data: await toFile(Buffer.from("ab"), "p") });
  expect(await listAllKeys(bucket, `uploads/${pending.id}/`)).toHaveLength(2);

  // A cancelled upload whose part clean-up never ran (the process died right after the status change).
  const cancelled = await client.uploads.create({ bytes: 3, filename: "gone.bin", mime_type: "text/plain", purpose: "assistants" });
  expect((await client.uploads.cancel(cancelled.id)).status).toBe("cancelled");
  const leftoverKey = `uploads/${cancelled.id}/part_${randomBytes(16).toString("hex")}`;
  // And a part of the pending upload whose write was cut off: a multipart upload S3 keeps until aborted.
  const cutOffKey = `uploads/${pending.id}/part_${randomBytes(16).toString("hex")}`;
  const liveWriteKey = `uploads/${live.id}/part_${randomBytes(16).toString("hex")}`;
  const s3 = testS3Client();
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: leftoverKey, Body: Buffer.from("xyz") }));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: cutOffKey }));
    await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: liveWriteKey }));
  } finally {
    s3.destroy();
  }
  await db.query(
    `insert into openai_upload_parts (id, upload_id, bytes, sha256, storage_key, created_at) values ($1, $2, 3, $3, $4, $5)`,
    [leftoverKey.split("/").at(-1), cancelled.id, "0".repeat(64), leftoverKey, nowSeconds()],
  );

  await db.query(`update openai_uploads set expires_at = $1 where id = $2`, [nowSeconds() - 1, pending.id]);
  // Watch the database and the bucket only: asking the API would expire the upload on the way.
  await eventually(async () => {
    const { rows } = await db.query<{ status: string }>(`select status from openai_uploads where id = $1`, [pending.id]);
    expect(rows[0]?.status).toBe("expired");
    expect(await listAllKeys(bucket, `uploads/${pending.id}/`)).toEqual([]);
    expect((await db.query(`select id from openai_upload_parts where upload_id = $1`, [pending.id])).rows).toEqual([]);
    expect(await listAllKeys(bucket, `uploads/${cancelled.id}/`)).toEqual([]);
    expect((await db.query(`select id from openai_upload_parts where upload_id = $1`, [cancelled.id])).rows).toEqual([]);
    expect((await listMultipartUploads(bucket)).map((u) => u.key)).not.toContain(cutOffKey);
  }, 60_000);
  // Only the expired upload's unfinished write was aborted.
  expect((await listMultipartUploads(bucket)).map((u) => u.key)).toEqual([liveWriteKey]);
  await eventually(async () => expect(await total("files_reaped_uploads_total")).toBe(uploadsBefore + 1));

  const seen = (await (await fetch(`${replicas[1]!.baseUrl}/v1/uploads/${pending.id}`)).json()) as { status: string };
  expect(seen.status).toBe("expired");
  await expect(client.uploads.complete(pending.id, { part_ids: [`part_${"0".repeat(32)}`] })).rejects.toBeInstanceOf(OpenAI.ConflictError);
  // The upload still within its hour keeps its part, and can be completed.
  expect(await listAllKeys(bucket, `uploads/${live.id}/`)).toHaveLength(1);
  const { rows } = await db.query<{ status: string }>(`select status from openai_uploads where id = $1`, [live.id]);
  expect(rows[0]?.status).toBe("pending");
  // Nothing in all this was a failure worth a warning.
  expect(replicas.flatMap((r) => r.output).filter((line) => line.includes("reaper: step failed"))).toEqual([]);
});
