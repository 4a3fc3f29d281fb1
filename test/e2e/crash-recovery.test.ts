/**
 * A server killed (SIGKILL) in the middle of a large streaming upload leaves an S3 multipart upload
 * and no row. After a restart no file is visible, and reconcile finds the leftover and removes it.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint, testS3Store } from "../support/env.js";
import { runReconcile, writeConfigFile, type JsonReport, type MetadataStoreYaml } from "../support/reconcile-process.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB } from "../support/test-helpers.js";

const TOTAL = 64 * MiB;
const PREFIX = "crash/";

const backends: [string, (label: string) => Promise<MetadataStoreYaml>][] = [
  ["SQLite", async (label) => ({ type: "sqlite", db_path: join(await tempDir(label), "files.db") })],
  ["PostgreSQL", async (label) => ({ type: "postgres", url: await createTestDatabase(label) })],
];

/**
 * Starts POST /v1/files with a multipart form declaring a 64 MiB file and sends it 1 MiB at a time,
 * stopping (with the request still open) as soon as S3 shows a multipart upload in progress.
 * Returns that upload's key; the request is left hanging for the kill to cut.
 */
async function uploadUntilMultipartStarts(server: ServerProcess, bucket: string): Promise<{ key: string; sent: number }> {
  const boundary = `----crash${randomBytes(8).toString("hex")}`;
  const req = http.request(`${server.baseUrl}/v1/files`, {
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${boundary}`, authorization: "Bearer test-key" },
  });
  req.on("error", () => {}); // the kill resets the connection: expected
  req.on("response", (res) => res.resume());
  const write = (data: Buffer | string) =>
    new Promise<void>((resolve, reject) => req.write(data, (err) => (err ? reject(err) : resolve())));
  await write(
    `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const chunk = randomBytes(MiB);
  for (let sent = 0; sent < TOTAL; ) {
    await write(chunk);
    sent += chunk.length;
    const uploads = await listMultipartUploads(bucket);
    if (uploads.length > 0) {
      expect(uploads).toHaveLength(1);
      return { key: uploads[0]!.key, sent };
    }
  }
  throw new Error("the whole file was sent and no multipart upload was ever seen in S3");
}

for (const [name, metadataStoreFor] of backends) {
  describe(`SIGKILL mid-upload, on S3 (${testS3Store()}) with ${name}`, () => {
    it("leaves no visible file, and reconcile finds and removes the unfinished upload", async () => {
      const bucket = await createTestBucket(`crash ${name}`);
      const config = s3ProviderConfig(testS3Endpoint(), bucket, await metadataStoreFor(`crash ${name}`), {
        key_prefix: PREFIX,
        part_size_bytes: 5 * MiB,
      });
      const configPath = await writeConfigFile(config);

      const first = await startServer({ config });
      let leftover: { key: string; sent: number };
      try {
        leftover = await uploadUntilMultipartStarts(first, bucket);
      } finally {
        expect(await first.stop("SIGKILL")).toBeNull(); // killed by the signal, no exit code
      }
      expect(leftover.sent).toBeLessThan(TOTAL);
      expect(leftover.key).toMatch(new RegExp(`^${PREFIX}file-[0-9a-f]{32}$`));
      const fileId = leftover.key.slice(PREFIX.length);
      expect((await listMultipartUploads(bucket)).map((u) => u.key)).toEqual([leftover.key]);
      expect(await listAllKeys(bucket)).toEqual([]); // a multipart upload is not an object

      const second = await startServer({ config });
      try {
        const client = new OpenAI({ apiKey: "test-key", baseURL: `${second.baseUrl}/v1`, maxRetries: 0 });
        const listed = [];
        for await (const f of client.files.list()) listed.push(f.id);
        expect(listed).toEqual([]);
        await expect(client.files.retrieve(fileId)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
        await expect(client.files.content(fileId)).rejects.toBeInstanceOf(OpenAI.NotFoundError);

        const dry = await runReconcile(["--dry-run", "--config", configPath]);
        expect(dry.code).toBe(1);
        expect(dry.stdout).toContain(leftover.key);
        expect(dry.stdout).toMatch(/Unfinished uploads: 1/);
        const report = (JSON.parse((await runReconcile(["--dry-run", "--json", "--config", configPath])).stdout) as JsonReport).report;
        expect(report.incompleteWrites.map((w) => w.key)).toEqual([leftover.key]);
        expect(report.orphanObjects).toEqual([]);
        expect(report.missingObjects).toEqual([]);

        const apply = await runReconcile(["--apply", "--grace-seconds", "0", "--config", configPath]);
        expect(apply.code).toBe(0);
        expect(apply.stdout).toMatch(/aborted 1 unfinished upload\(s\)/);
        expect(await listMultipartUploads(bucket)).toEqual([]);
        expect(await listAllKeys(bucket)).toEqual([]);

        const clean = await runReconcile(["--dry-run", "--config", configPath]);
        expect(clean.code).toBe(0);
        expect(clean.stdout).toContain("Result: consistent");
        // The restarted server works as before.
        const file = await client.files.create({ file: new File([randomBytes(1000)], "after.bin"), purpose: "assistants" });
        expect((await client.files.retrieve(file.id)).bytes).toBe(1000);
      } finally {
        await second.stop();
      }
    });
  });
}
