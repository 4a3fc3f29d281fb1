/**
 * The reaper through a storage and a database failure: each failure is logged, the server keeps
 * serving, and once the failure is over the reaper finishes the job, the half-done reap included.
 * Time moves by editing rows (expires_at, and the claim lease) in the database.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand } from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, testS3Client, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually } from "../support/test-helpers.js";

interface PgClient {
  connect(): Promise<void>;
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  end(): Promise<void>;
}
const { Client } = createRequire(import.meta.url)("pg") as { Client: new (config: { connectionString: string }) => PgClient };

let server: ServerProcess;
let client: OpenAI;
let bucket: string;
let db: PgClient;

const nowSeconds = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  bucket = await createTestBucket("reaper-outage");
  const url = await createTestDatabase("reaper_outage");
  server = await startServer({
    config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "postgres", url }, { reaper: { interval_seconds: 1, batch_size: 10 } }),
  });
  client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
  db = new Client({ connectionString: url });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  expect(await server?.stop()).toBe(0);
});

const warnings = (step: string) =>
  server.output.filter((line) => line.includes("reaper: step failed") && line.includes(`"step":"${step}"`));

async function rowExists(id: string): Promise<boolean> {
  return (await db.query(`select id from openai_files where id = $1`, [id])).rows.length === 1;
}

async function expire(id: string): Promise<void> {
  await db.query(`update openai_files set expires_at = $1 where id = $2`, [nowSeconds() - 1, id]);
}

it("survives S3 failing its deletes, keeps the row meanwhile, and finishes once S3 is back", async () => {
  const file = await client.files.create({ file: await toFile(randomBytes(50), "a.bin"), purpose: "assistants" });
  const s3 = testS3Client();
  try {
    // The bucket goes away (its one object first, as S3 requires): every delete now fails with NoSuchBucket.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: file.id }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    await expire(file.id);
    await eventually(async () => expect(warnings("delete object").length).toBeGreaterThanOrEqual(1), 30_000);
    // The row stays, so nothing is lost track of; the server still answers.
    expect(await rowExists(file.id)).toBe(true);
    expect(server.child.exitCode).toBeNull();
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    await expect(client.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    // S3 is back. The failed claim lapses (moved forward here by clearing the lease), and the
    // next pass deletes the (already missing) object and then the row.
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await db.query(`update openai_files set reap_claimed_until = $1 where id = $2`, [nowSeconds() - 1, file.id]);
    await eventually(async () => expect(await rowExists(file.id)).toBe(false), 30_000);
  } finally {
    s3.destroy();
  }
});

it("survives the database failing its claims, and reaps again once it is back", async () => {
  const file = await client.files.create({ file: await toFile(randomBytes(60), "b.bin"), purpose: "assistants" });
  await expire(file.id);
  // The table vanishes from the reaper's view for a while: every claim fails.
  await db.query(`alter table openai_files rename to openai_files_away`);
  try {
    await eventually(async () => expect(warnings("claim files").length).toBeGreaterThanOrEqual(2), 30_000);
    expect(server.child.exitCode).toBeNull();
  } finally {
    await db.query(`alter table openai_files_away rename to openai_files`);
  }
  await eventually(async () => {
    expect(await rowExists(file.id)).toBe(false);
    expect(await listAllKeys(bucket)).not.toContain(file.id);
  }, 30_000);
  expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
});
