import * as fs from "node:fs/promises";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { createRequire } from "node:module";
import {
  createTestBucket,
  createTestDatabase,
  listAllKeys,
  listMultipartUploads,
  tempDir,
  testPgUrl,
  testS3Client,
  testS3Endpoint,
} from "../support/env.js";

interface PgClient {
  connect(): Promise<void>;
  query(sql: string): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}
const pg = createRequire(import.meta.url)("pg") as { Client: new (c: { connectionString: string }) => PgClient };

describe("test infrastructure", () => {
  it("provides an S3 endpoint where objects round-trip", async () => {
    expect(testS3Endpoint()).toMatch(/^https?:\/\//);
    const bucket = await createTestBucket("Test Infra / S3!");
    expect(bucket).toMatch(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);

    const s3 = testS3Client();
    try {
      const body = Buffer.from(`hello from ${bucket}\n`);
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "dir/hello.txt", Body: body }));
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/hello.txt" }));
      expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);
    } finally {
      s3.destroy();
    }

    expect(await listAllKeys(bucket)).toEqual(["dir/hello.txt"]);
    expect(await listAllKeys(bucket, "other/")).toEqual([]);
    expect(await listMultipartUploads(bucket)).toEqual([]);
  });

  it("provides PostgreSQL where fresh databases can be created", async () => {
    expect(testPgUrl()).toMatch(/^postgres(ql)?:\/\//);
    const url = await createTestDatabase("Test Infra PG");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const res = await client.query("select 1 as one, current_database() as db");
      expect(res.rows[0]?.one).toBe(1);
      expect(res.rows[0]?.db).toBe(new URL(url).pathname.slice(1));
    } finally {
      await client.end();
    }
  });

  it("makes unique temp dirs", async () => {
    const a = await tempDir("infra");
    const b = await tempDir("infra");
    expect(a).not.toBe(b);
    expect((await fs.stat(a)).isDirectory()).toBe(true);
    await fs.rm(a, { recursive: true });
    await fs.rm(b, { recursive: true });
  });
});
