/**
 * The S3 retry policy and timeouts, through a real server and real moto, with a proxy in between
 * that injects what moto cannot produce: throttling (503 SlowDown) and answers that never come.
 * - With the default policy (3 attempts) a few 503s are retried away: uploads (single PUT,
 *   multipart, Uploads parts) and downloads succeed, and the proxy saw the retries.
 * - With max_attempts: 1 the same fault reaches the client as 503 / UNAVAILABLE and leaves no row,
 *   no object and no pending multipart upload.
 * - A stalled answer ends after request_timeout_seconds (per attempt) with 503, and the server
 *   keeps serving.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { loadConfig } from "../../src/config/load-config.js";
import type { S3StorageConfig } from "../../src/config/config.js";
import { openObjectStore } from "../../src/storage/open-store.js";
import type { S3Retry } from "../../src/storage/s3-client.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { startS3FaultProxy, type S3FaultProxy } from "../support/s3-fault-proxy.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { bodyOf, MiB, rejection, sha256 } from "../support/test-helpers.js";

const PART = 5 * MiB;

interface Setup {
  server: ServerProcess;
  proxy: S3FaultProxy;
  bucket: string;
  openai: OpenAI;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

async function setUp(label: string, extra: object): Promise<Setup> {
  const proxy = await startS3FaultProxy(testS3Endpoint());
  cleanups.push(() => proxy.close());
  const bucket = await createTestBucket(label);
  const dir = await tempDir(label);
  const server = await startServer({
    config: s3ProviderConfig(proxy.endpoint, bucket, { type: "sqlite", db_path: join(dir, "files.db") }, { part_size_bytes: PART, ...extra }),
  });
  cleanups.push(() => server.stop("SIGKILL"));
  // 30 s: far above any bound tested here, so a hang fails the test instead of passing late.
  const openai = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: 30_000 });
  proxy.reset(); // start-up traffic (HeadBucket) is not what the tests count
  return { server, proxy, bucket, openai };
}

const statuses = (proxy: S3FaultProxy, op: Parameters<S3FaultProxy["requests"]>[0]) => proxy.requests(op).map((r) => r.status);
/** Like statuses, with any success as "2xx" (a download may read a range: 206). */
const outcomes = (proxy: S3FaultProxy, op: Parameters<S3FaultProxy["requests"]>[0]) =>
  statuses(proxy, op).map((status) => (status !== undefined && status >= 200 && status < 300 ? "2xx" : status));

async function upload(openai: OpenAI, data: Buffer, filename = "data.bin") {
  return await openai.files.create({ file: await toFile(data, filename), purpose: "user_data" });
}

async function content(openai: OpenAI, id: string): Promise<Buffer> {
  return Buffer.from(await (await openai.files.content(id)).arrayBuffer());
}

async function fileIds(openai: OpenAI): Promise<string[]> {
  const ids: string[] = [];
  for await (const f of openai.files.list({ limit: 100 })) ids.push(f.id);
  return ids;
}

/** The value of one sample from /metrics (0 when the series does not exist yet). */
async function metric(server: ServerProcess, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The APIError a REST call must end with. */
async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const err = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OpenAI.APIError);
  return err as InstanceType<typeof OpenAI.APIError>;
}

describe("with the default retry policy (3 attempts), 503 SlowDown is retried away", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp("s3-faults-retry", {});
  });

  it("a small file (one PutObject) uploads after two 503s, and reads back", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", fault: "slow-down", times: 2 });
    const data = randomBytes(100_000);
    const file = await upload(s.openai, data);
    expect(file.bytes).toBe(data.length);
    expect(statuses(s.proxy, "PutObject")).toEqual([503, 503, 200]);
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
    expect(await listAllKeys(s.bucket)).toContain(file.id);
  });

  it("a multipart file uploads through 503s on create, on parts and on complete", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "CreateMultipartUpload", fault: "slow-down", times: 1 });
    s.proxy.inject({ operation: "UploadPart", fault: "slow-down", times: 2 });
    s.proxy.inject({ operation: "CompleteMultipartUpload", fault: "slow-down", times: 2 });
    const data = randomBytes(2 * PART + 1234);
    const file = await upload(s.openai, data);
    expect(file.bytes).toBe(data.length);
    expect(s.proxy.pendingFaults()).toBe(0);
    expect(statuses(s.proxy, "CreateMultipartUpload")).toEqual([503, 200]);
    expect(statuses(s.proxy, "CompleteMultipartUpload")).toEqual([503, 503, 200]);
    // Three parts, two of them answered 503 once before the retry went through.
    expect(statuses(s.proxy, "UploadPart").filter((x) => x === 200)).toHaveLength(3);
    expect(statuses(s.proxy, "UploadPart").filter((x) => x === 503)).toHaveLength(2);
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
    expect(await listMultipartUploads(s.bucket)).toEqual([]);
  });

  it("downloads (REST and gRPC) succeed through 503s on GetObject", async () => {
    const data = randomBytes(300_000);
    const file = await upload(s.openai, data);
    s.proxy.reset();
    s.proxy.inject({ operation: "GetObject", fault: "slow-down", times: 2 });
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
    expect(outcomes(s.proxy, "GetObject")).toEqual([503, 503, "2xx"]);
    s.proxy.inject({ operation: "GetObject", fault: "slow-down", times: 1 });
    const grpc = connectClient(s.server.baseUrl);
    expect(sha256((await grpc.download({ fileId: file.id })).data)).toBe(sha256(data));
    expect(outcomes(s.proxy, "GetObject")).toEqual([503, 503, "2xx", 503, "2xx"]);
  });

  it("Uploads: a part, and the file assembled from the parts, go through 503s", async () => {
    const data = randomBytes(200_000);
    const created = await s.openai.uploads.create({ bytes: data.length, filename: "parts.bin", mime_type: "application/octet-stream", purpose: "user_data" });
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", key: /^uploads\//, fault: "slow-down", times: 2 });
    const first = await s.openai.uploads.parts.create(created.id, { data: await toFile(data.subarray(0, 120_000), "p1") });
    const second = await s.openai.uploads.parts.create(created.id, { data: await toFile(data.subarray(120_000), "p2") });
    s.proxy.inject({ operation: "PutObject", key: /^file-/, fault: "slow-down", times: 2 });
    const done = await s.openai.uploads.complete(created.id, { part_ids: [first.id, second.id] });
    expect(done.status).toBe("completed");
    expect(statuses(s.proxy, "PutObject")).toEqual([503, 503, 200, 200, 503, 503, 200]);
    expect(sha256(await content(s.openai, done.file!.id))).toBe(sha256(data));
    expect(await listAllKeys(s.bucket, "uploads/")).toEqual([]);
  });

  it("a command that succeeded on a retry is not counted as a failed S3 command", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", fault: "slow-down", times: 1 });
    const before = await metric(s.server, "files_s3_operation_errors_total", { operation: "PutObject" });
    const retriesBefore = await metric(s.server, "files_s3_retries_total", { operation: "PutObject", code: "SlowDown" });
    const okBefore = await metric(s.server, "files_s3_operation_duration_seconds_count", { operation: "PutObject", outcome: "ok" });
    await upload(s.openai, randomBytes(1000));
    expect(statuses(s.proxy, "PutObject")).toEqual([503, 200]);
    expect(await metric(s.server, "files_s3_operation_errors_total", { operation: "PutObject" })).toBe(before);
    expect(await metric(s.server, "files_s3_retries_total", { operation: "PutObject", code: "SlowDown" })).toBe(retriesBefore + 1);
    expect(await metric(s.server, "files_s3_operation_duration_seconds_count", { operation: "PutObject", outcome: "ok" })).toBe(okBefore + 1);
  });
});

describe("the store built from the config reports each retry (onS3Retry)", () => {
  const storeFor = async (endpoint: string, bucket: string, extra: object) => {
    const dir = await tempDir("s3-faults-store");
    const path = join(dir, "files.yaml");
    await writeFile(
      path,
      stringify({ provider_type: "remote::s3", config: { bucket_name: bucket, endpoint_url: endpoint, aws_access_key_id: "test", aws_secret_access_key: "test", ...extra } }),
    );
    const storage = loadConfig({ configPath: path, env: {} }).storage as S3StorageConfig;
    const retries: S3Retry[] = [];
    const failures: string[] = [];
    const counted: string[] = [];
    const store = await openObjectStore(storage, {
      onS3Retry: (r) => retries.push(r),
      metrics: {
        s3Operation: (op, _s, code) => void (code !== undefined && failures.push(`${op}:${code}`)),
        s3Retry: (op, code) => void counted.push(`${op}:${code}`),
      },
    });
    return { store, retries, failures, counted };
  };

  for (const mode of ["standard", "adaptive"] as const) {
    it(`retry_mode ${mode}: two 503s on PutObject are retried and reported, then the put succeeds`, async () => {
      const proxy = await startS3FaultProxy(testS3Endpoint());
      cleanups.push(() => proxy.close());
      const bucket = await createTestBucket(`s3-faults-${mode}`);
      const { store, retries, failures, counted } = await storeFor(proxy.endpoint, bucket, { retry_mode: mode });
      proxy.inject({ operation: "PutObject", fault: "slow-down", times: 2 });
      await expect(store.put("k1", bodyOf(Buffer.from("hello")), { contentType: "text/plain" })).resolves.toEqual({ bytes: 5 });
      expect(retries).toEqual([
        { operation: "PutObject", attempt: 2, errorCode: "SlowDown", status: 503 },
        { operation: "PutObject", attempt: 3, errorCode: "SlowDown", status: 503 },
      ]);
      expect(failures).toEqual([]);
      expect(counted).toEqual(["PutObject:SlowDown", "PutObject:SlowDown"]);
    });
  }

  it("max_attempts: 2 gives up after the second 503, reporting one retry and one failed command", async () => {
    const proxy = await startS3FaultProxy(testS3Endpoint());
    cleanups.push(() => proxy.close());
    const bucket = await createTestBucket("s3-faults-two");
    const { store, retries, failures } = await storeFor(proxy.endpoint, bucket, { max_attempts: 2 });
    proxy.inject({ operation: "PutObject", fault: "slow-down", times: 2 });
    await expect(store.put("k1", bodyOf(Buffer.from("hello")), { contentType: "text/plain" })).rejects.toMatchObject({ code: "unavailable" });
    expect(statuses(proxy, "PutObject")).toEqual([503, 503]);
    expect(retries).toEqual([{ operation: "PutObject", attempt: 2, errorCode: "SlowDown", status: 503 }]);
    expect(failures).toEqual(["PutObject:SlowDown"]);
    expect(await listAllKeys(bucket)).toEqual([]);
  });
});

describe("with max_attempts: 1, one 503 SlowDown fails the call cleanly", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp("s3-faults-once", { max_attempts: 1 });
  });

  const expectNothingLeft = async () => {
    expect(await fileIds(s.openai)).toEqual([]);
    expect((await listAllKeys(s.bucket)).filter((k) => !k.startsWith("uploads/"))).toEqual([]);
    expect(await listMultipartUploads(s.bucket)).toEqual([]);
  };

  it("a small file: REST answers 503, the S3 error metric counts the SlowDown, nothing is left", async () => {
    s.proxy.reset();
    const errorsBefore = await metric(s.server, "files_s3_operation_errors_total", { operation: "PutObject", code: "SlowDown" });
    s.proxy.inject({ operation: "PutObject", fault: "slow-down" });
    const err = await apiError(upload(s.openai, randomBytes(10_000)));
    expect(err.status).toBe(503);
    expect(statuses(s.proxy, "PutObject")).toEqual([503]); // not retried
    expect(await metric(s.server, "files_s3_operation_errors_total", { operation: "PutObject", code: "SlowDown" })).toBe(errorsBefore + 1);
    await expectNothingLeft();
  });

  it("a small file over gRPC: UNAVAILABLE, nothing left", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", fault: "slow-down" });
    const grpc = connectClient(s.server.baseUrl);
    const { code } = await rejection(grpc.upload({ filename: "g.bin", purpose: FilePurpose.USER_DATA }, [randomBytes(10_000)]));
    expect(code).toBe(Code.Unavailable);
    await expectNothingLeft();
  });

  for (const operation of ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"] as const) {
    it(`a multipart file with a 503 on ${operation}: REST 503, no row, no object, no pending multipart upload`, async () => {
      s.proxy.reset();
      s.proxy.inject({ operation, fault: "slow-down" });
      const err = await apiError(upload(s.openai, randomBytes(2 * PART + 10)));
      expect(err.status).toBe(503);
      expect(statuses(s.proxy, operation)).toContain(503);
      await expectNothingLeft();
    });
  }

  it("Uploads: a failed part leaves no part object; a failed complete leaves no file, and the upload can be completed again", async () => {
    const data = randomBytes(50_000);
    const created = await s.openai.uploads.create({ bytes: data.length, filename: "u.bin", mime_type: "application/octet-stream", purpose: "user_data" });
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", key: /^uploads\//, fault: "slow-down" });
    expect((await apiError(s.openai.uploads.parts.create(created.id, { data: await toFile(data, "p") }))).status).toBe(503);
    expect(await listAllKeys(s.bucket, "uploads/")).toEqual([]);
    const part = await s.openai.uploads.parts.create(created.id, { data: await toFile(data, "p") });
    s.proxy.inject({ operation: "PutObject", key: /^file-/, fault: "slow-down" });
    expect((await apiError(s.openai.uploads.complete(created.id, { part_ids: [part.id] }))).status).toBe(503);
    await expectNothingLeft();
    expect((await s.openai.uploads.complete(created.id, { part_ids: [part.id] })).status).toBe("completed");
    expect(await listAllKeys(s.bucket, "uploads/")).toEqual([]);
    const [id] = await fileIds(s.openai);
    expect(sha256(await content(s.openai, id!))).toBe(sha256(data));
    await s.openai.files.delete(id!);
  });

  it("Uploads joined inside S3: a 503 on a part copy fails complete cleanly, and the upload can be completed again", async () => {
    const parts = [randomBytes(PART), randomBytes(PART), randomBytes(1000)];
    const created = await s.openai.uploads.create({ bytes: PART * 2 + 1000, filename: "c.bin", mime_type: "application/octet-stream", purpose: "user_data" });
    const ids: string[] = [];
    for (const p of parts) ids.push((await s.openai.uploads.parts.create(created.id, { data: await toFile(p, "p") })).id);
    s.proxy.reset();
    // A part copy is an UploadPart request (with x-amz-copy-source) for the new file's key.
    s.proxy.inject({ operation: "UploadPart", key: /^file-/, fault: "slow-down" });
    expect((await apiError(s.openai.uploads.complete(created.id, { part_ids: ids }))).status).toBe(503);
    expect(statuses(s.proxy, "UploadPart")).toContain(503);
    // Joined by copies inside S3, not by sending the bytes again.
    expect(s.proxy.requests("UploadPart").every((r) => r.copies)).toBe(true);
    expect(s.proxy.requests("PutObject")).toEqual([]);
    await expectNothingLeft();
    expect((await s.openai.uploads.complete(created.id, { part_ids: ids })).status).toBe("completed");
    expect(await listAllKeys(s.bucket, "uploads/")).toEqual([]);
    const [id] = await fileIds(s.openai);
    expect(sha256(await content(s.openai, id!))).toBe(sha256(Buffer.concat(parts)));
    await s.openai.files.delete(id!);
  });

  it("a download: REST 503 and gRPC UNAVAILABLE, and the file is still there afterwards", async () => {
    const data = randomBytes(20_000);
    const file = await upload(s.openai, data);
    s.proxy.reset();
    s.proxy.inject({ operation: "GetObject", fault: "slow-down", times: 2 });
    expect((await apiError(content(s.openai, file.id))).status).toBe(503);
    const { code } = await rejection(connectClient(s.server.baseUrl).download({ fileId: file.id }));
    expect(code).toBe(Code.Unavailable);
    expect(statuses(s.proxy, "GetObject")).toEqual([503, 503]);
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
    await s.openai.files.delete(file.id);
  });
});

describe("request_timeout_seconds bounds a stalled S3 answer", () => {
  let s: Setup;
  // 1 s per attempt, 2 attempts, plus backoff: well under BOUND_MS; without the timeout it would hang.
  const BOUND_MS = 8_000;
  beforeAll(async () => {
    s = await setUp("s3-faults-stall", { request_timeout_seconds: 1, max_attempts: 2 });
  });

  const timed = async <T>(promise: Promise<T>) => {
    const t0 = Date.now();
    const result = await promise;
    return { result, ms: Date.now() - t0 };
  };

  it("a stalled GetObject ends in 503 within the bound, and the next download works", async () => {
    const data = randomBytes(50_000);
    const file = await upload(s.openai, data);
    s.proxy.reset();
    s.proxy.inject({ operation: "GetObject", fault: "stall", times: 2 });
    const { result: err, ms } = await timed(apiError(content(s.openai, file.id)));
    expect(err.status).toBe(503);
    expect(ms).toBeGreaterThanOrEqual(2_000); // both attempts waited their second
    expect(ms).toBeLessThan(BOUND_MS);
    expect(s.proxy.requests("GetObject")).toHaveLength(2);
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
  });

  it("one stalled attempt is retried: the download succeeds after about a second", async () => {
    const data = randomBytes(50_000);
    const file = await upload(s.openai, data);
    s.proxy.reset();
    s.proxy.inject({ operation: "GetObject", fault: "stall", times: 1 });
    const { result, ms } = await timed(content(s.openai, file.id));
    expect(sha256(result)).toBe(sha256(data));
    expect(ms).toBeGreaterThanOrEqual(1_000);
    expect(ms).toBeLessThan(BOUND_MS);
  });

  it("a PutObject whose answer never comes (S3 stored it) ends in 503, leaving no row and no object", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "PutObject", fault: "stall-after-upstream", times: 2 });
    const { result: err, ms } = await timed(apiError(upload(s.openai, randomBytes(30_000))));
    expect(err.status).toBe(503);
    expect(ms).toBeLessThan(BOUND_MS);
    expect(s.proxy.requests("PutObject")).toHaveLength(2);
    const rows = new Set(await fileIds(s.openai));
    // Only objects of files that exist (the ones earlier tests uploaded) remain.
    expect((await listAllKeys(s.bucket)).filter((k) => !rows.has(k))).toEqual([]);
  });

  it("a stalled multipart part ends in 503 with no pending multipart upload; then the server serves as before", async () => {
    s.proxy.reset();
    s.proxy.inject({ operation: "UploadPart", fault: "stall", times: 1000 }); // every attempt of every part
    const { result: err, ms } = await timed(apiError(upload(s.openai, randomBytes(2 * PART + 10))));
    expect(err.status).toBe(503);
    expect(ms).toBeLessThan(BOUND_MS + 5_000); // parts in flight time out together; the abort follows
    expect(await listMultipartUploads(s.bucket)).toEqual([]);
    const rows = new Set(await fileIds(s.openai));
    expect((await listAllKeys(s.bucket)).filter((k) => !rows.has(k))).toEqual([]);

    s.proxy.reset();
    expect((await fetch(`${s.server.baseUrl}/readyz`)).status).toBe(200);
    const data = randomBytes(2 * PART + 10);
    const file = await upload(s.openai, data);
    expect(sha256(await content(s.openai, file.id))).toBe(sha256(data));
  });
});
