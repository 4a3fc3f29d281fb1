/**
 * Capabilities found, not assumed: the S3 fault proxy answers one operation with 501
 * NotImplemented, as some S3-compatible stores do, and the service must notice it once (a log
 * line, a metric label) and take the other road, losing nothing and leaving nothing visible.
 * Runs on moto and on s3proxy.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { CreateMultipartUploadCommand, PutObjectCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Client, testS3Endpoint, testS3Store } from "../support/env.js";
import { runReconcile, writeConfigFile, type JsonReport } from "../support/reconcile-process.js";
import { startS3FaultProxy, type S3FaultProxy } from "../support/s3-fault-proxy.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup(label: string, options: { startWith?: () => void } = {}) {
  const bucket = await createTestBucket(label);
  const proxy = await startS3FaultProxy(testS3Endpoint());
  cleanup.push(() => proxy.close());
  options.startWith?.call(undefined);
  const dir = await tempDir(label);
  const metadata = { type: "sqlite", db_path: join(dir, "files.db") } as const;
  const config = s3ProviderConfig(proxy.endpoint, bucket, metadata, { part_size_bytes: 5 * MiB });
  return { bucket, proxy, config, metadata };
}

async function serve(config: object): Promise<ServerProcess> {
  const server = await startServer({ config });
  cleanup.push(async () => expect(await server.stop()).toBe(0));
  return server;
}

const unsupportedMetric = async (server: ServerProcess) =>
  (await (await fetch(`${server.baseUrl}/metrics`)).text()).split("\n").filter((l) => l.startsWith("files_s3_unsupported_operation{"));
const logLines = (server: ServerProcess, pattern: RegExp) => server.output.filter((l) => pattern.test(l));

function sdk(server: ServerProcess): OpenAI {
  return new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
}

describe(`a store that lacks an operation (501 NotImplemented), in front of ${testS3Store()}`, () => {
  it("UploadPartCopy: Uploads are assembled by streaming their parts, found once, logged once, exported as a metric label", async () => {
    const { proxy, config, bucket } = await setup("cap-part-copy");
    proxy.inject({ operation: "UploadPart", copies: true, fault: "not-implemented", times: 1000 });
    const server = await serve(config);
    const client = sdk(server);
    const copiesPerRound: number[] = [];
    for (let round = 0; round < 2; round++) {
      const parts = [randomBytes(6 * MiB), randomBytes(5 * MiB + 3)];
      const whole = Buffer.concat(parts);
      const upload = await client.uploads.create({ bytes: whole.length, filename: `big-${round}.bin`, purpose: "batch", mime_type: "application/octet-stream" });
      const ids = [];
      for (const p of parts) ids.push((await client.uploads.parts.create(upload.id, { data: await toFile(p, "part") })).id);
      const done = await client.uploads.complete(upload.id, { part_ids: ids });
      expect(done.status).toBe("completed");
      const back = Buffer.from(await (await client.files.content(done.file!.id)).arrayBuffer());
      expect(sha256(back)).toBe(sha256(whole));
      copiesPerRound.push(proxy.requests("UploadPart").filter((r) => r.copies).length);
    }
    // Found by the first Upload (whose part copies were in flight together); the second went straight to streaming.
    expect(copiesPerRound[0]).toBeGreaterThanOrEqual(1);
    expect(copiesPerRound[1]).toBe(copiesPerRound[0]);
    expect(logLines(server, /does not implement UploadPartCopy/)).toHaveLength(1);
    // s3proxy itself lacks DeleteObjects (see the DeleteObjects tests): that label is the store's, not this test's.
    const labels = (await unsupportedMetric(server)).filter((l) => !l.includes('operation="DeleteObjects"'));
    expect(labels).toEqual(['files_s3_unsupported_operation{operation="UploadPartCopy"} 1']);
    expect(await listMultipartUploads(bucket)).toEqual([]);
    expect((await listAllKeys(bucket)).filter((k) => k.startsWith("uploads/"))).toEqual([]);
  });

  it("DeleteObjects: an ended Upload's parts are removed one key at a time, found once, logged once", async () => {
    const { proxy, config, bucket } = await setup("cap-delete-objects");
    proxy.inject({ operation: "DeleteObjects", fault: "not-implemented", times: 1000 });
    const server = await serve(config);
    const client = sdk(server);
    for (let round = 0; round < 2; round++) {
      const parts = [randomBytes(1024), randomBytes(2048), randomBytes(10)];
      const upload = await client.uploads.create({ bytes: 3082, filename: `small-${round}.bin`, purpose: "batch", mime_type: "application/octet-stream" });
      const ids = [];
      for (const p of parts) ids.push((await client.uploads.parts.create(upload.id, { data: await toFile(p, "part") })).id);
      expect((await client.uploads.complete(upload.id, { part_ids: ids })).status).toBe("completed");
    }
    expect(proxy.requests("DeleteObjects")).toHaveLength(1); // asked once, then never again
    expect(proxy.requests("DeleteObject").length).toBeGreaterThanOrEqual(6);
    expect(logLines(server, /does not implement DeleteObjects/)).toHaveLength(1);
    expect(await unsupportedMetric(server)).toEqual(['files_s3_unsupported_operation{operation="DeleteObjects"} 1']);
    expect((await listAllKeys(bucket)).filter((k) => k.startsWith("uploads/"))).toEqual([]);
  });

  it("DeleteObjects as the store answers it: an ended Upload's parts go in one request (moto), or one each where it is missing (s3proxy)", async () => {
    const { proxy, config, bucket } = await setup("cap-delete-objects-ok");
    const server = await serve(config);
    const client = sdk(server);
    const parts = [randomBytes(1024), randomBytes(2048), randomBytes(10)];
    const upload = await client.uploads.create({ bytes: 3082, filename: "small.bin", purpose: "batch", mime_type: "application/octet-stream" });
    const ids = [];
    for (const p of parts) ids.push((await client.uploads.parts.create(upload.id, { data: await toFile(p, "part") })).id);
    expect((await client.uploads.complete(upload.id, { part_ids: ids })).status).toBe("completed");
    const batch = proxy.requests("DeleteObjects");
    expect(batch).toHaveLength(1);
    const partDeletes = proxy.requests("DeleteObject").filter((r) => r.key.startsWith("uploads/"));
    if (testS3Store() === "s3proxy") {
      // s3proxy 2.6 answers DeleteObjects 501 NotImplemented: found once, then one DeleteObject per part.
      expect(batch[0]!.status).toBe(501);
      expect(partDeletes).toHaveLength(3);
      expect(await unsupportedMetric(server)).toEqual(['files_s3_unsupported_operation{operation="DeleteObjects"} 1']);
    } else {
      expect(batch[0]!.status).toBe(200);
      expect(partDeletes).toEqual([]);
      expect(await unsupportedMetric(server)).toEqual([]);
    }
    expect((await listAllKeys(bucket)).filter((k) => k.startsWith("uploads/"))).toEqual([]);
  });

  it("AbortMultipartUpload: a cancelled upload is left for the bucket's lifecycle rules, and the log says so", async () => {
    const { proxy, config } = await setup("cap-abort");
    proxy.inject({ operation: "AbortMultipartUpload", fault: "not-implemented", times: 1000 });
    const server = await serve(config);
    const controller = new AbortController();
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (sent > 11 * MiB) {
          await eventually(async () => expect(proxy.requests("UploadPart").filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2), 30_000);
          controller.abort();
          return;
        }
        sent += MiB;
        c.enqueue(randomBytes(MiB));
      },
    });
    const form = new FormData();
    form.set("purpose", "batch");
    form.set("file", { type: "application/octet-stream", name: "cut.bin", stream: () => body, size: 64 * MiB, [Symbol.toStringTag]: "File" } as unknown as Blob, "cut.bin");
    await fetch(`${server.baseUrl}/v1/files`, { method: "POST", body: form, signal: controller.signal }).catch(() => undefined);
    await eventually(async () => {
      expect(proxy.requests("AbortMultipartUpload").map((r) => r.status)).toEqual([501]);
      expect(logLines(server, /the object store does not implement AbortMultipartUpload/)).toHaveLength(1);
      expect(logLines(server, /an unfinished multipart upload is left for the bucket's lifecycle rules/)).toHaveLength(1);
    }, 10_000);
    expect(await unsupportedMetric(server)).toEqual(['files_s3_unsupported_operation{operation="AbortMultipartUpload"} 1']);
  });

  it("HeadBucket at start: the bucket is checked with a one-key listing, and the service serves", async () => {
    const { proxy, config } = await setup("cap-head-bucket");
    proxy.inject({ operation: "HeadBucket", fault: "not-implemented", times: 1000 });
    const server = await serve(config);
    expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    const file = await sdk(server).files.create({ file: await toFile(Buffer.from("hello"), "h.txt"), purpose: "batch" });
    expect(file.bytes).toBe(5);
    expect(proxy.requests("HeadBucket").every((r) => r.status === 501)).toBe(true);
    expect(logLines(server, /does not implement HeadBucket/)).toHaveLength(1);
  });

  it("ListParts: reconcile still lists an unfinished upload, dated by its start, and removes it", async () => {
    const { proxy, config, bucket } = await setup("cap-list-parts");
    const s3 = testS3Client();
    const key = `file-${randomBytes(16).toString("hex")}`;
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
    s3.destroy();
    proxy.inject({ operation: "ListParts", fault: "not-implemented", times: 1000 });
    const configPath = await writeConfigFile(config);
    const dry = await runReconcile(["--dry-run", "--json", "--config", configPath]);
    expect(dry.code).toBe(1);
    const report = JSON.parse(dry.stdout) as JsonReport;
    expect(report.report.incompleteWrites.map((w) => [w.key, w.id])).toEqual([[key, UploadId]]);
    expect(proxy.requests("ListParts").map((r) => r.status)).toEqual([501]);
    const apply = await runReconcile(["--apply", "--grace-seconds", "0", "--config", configPath]);
    expect(apply.code).toBe(0);
    expect(await listMultipartUploads(bucket)).toEqual([]);
  });

  it("ListMultipartUploads: reconcile reports the orphan objects, says unfinished uploads could not be listed, and exits 1, not 2", async () => {
    const { proxy, config, bucket } = await setup("cap-list-uploads");
    const server = await serve(config);
    await sdk(server).files.create({ file: await toFile(Buffer.from("kept"), "k.txt"), purpose: "batch" });
    // An orphan: an object shaped like a file of ours that no row names.
    const orphan = `file-${randomBytes(16).toString("hex")}`;
    const s3 = testS3Client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: orphan, Body: "x" }));
    s3.destroy();
    proxy.inject({ operation: "ListMultipartUploads", fault: "not-implemented", times: 1000 });
    const configPath = await writeConfigFile(config);
    const text = await runReconcile(["--dry-run", "--config", configPath]);
    expect(text.stderr).not.toMatch(/unavailable/);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/Unfinished uploads: could not be listed/);
    expect(text.stdout).toContain(orphan);
    const json = await runReconcile(["--dry-run", "--json", "--config", configPath]);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as JsonReport & { report: { incompleteWritesUnlisted?: string } };
    expect(report.report.orphanObjects.map((o) => o.key)).toEqual([orphan]);
    expect(report.report.incompleteWritesUnlisted).toMatch(/lifecycle/);
  });
});
