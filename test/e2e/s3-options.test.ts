/**
 * Provider options that shape the objects the service writes, checked on the bucket itself (moto):
 * - sse: AES256 | aws:kms (+ sse_kms_key_id): HeadObject reports the encryption of every object
 *   written: a small file (one PutObject), a multipart file, Uploads parts and the file assembled
 *   from them. Without sse, objects carry no encryption header (the control).
 * - key_prefix: every object written (files, upload parts, multipart uploads) lands under the
 *   prefix and nothing else in the bucket is touched; a bad prefix stops the server at start-up.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand, type HeadObjectCommandOutput } from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { awsJson } from "../support/aws-signed.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { runServerToExit, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

const PART = 5 * MiB;

interface Running {
  server: ServerProcess;
  bucket: string;
  openai: OpenAI;
}

const servers: ServerProcess[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
});

async function start(label: string, extra: object, bucket?: string): Promise<Running> {
  bucket ??= await createTestBucket(label);
  const dir = await tempDir(label);
  const server = await startServer({
    config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }, { part_size_bytes: PART, ...extra }),
  });
  servers.push(server);
  return { server, bucket, openai: new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 }) };
}

async function head(bucket: string, key: string): Promise<HeadObjectCommandOutput> {
  const s3 = testS3Client();
  try {
    return await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } finally {
    s3.destroy();
  }
}

const encryption = (h: HeadObjectCommandOutput) => ({ sse: h.ServerSideEncryption, keyId: h.SSEKMSKeyId });

async function content(openai: OpenAI, id: string): Promise<Buffer> {
  return Buffer.from(await (await openai.files.content(id)).arrayBuffer());
}

/**
 * Writes objects every way the service does and returns each object key with what HeadObject
 * says about its encryption: a small file, a multipart file, two Uploads parts (read before
 * complete removes them), and the file assembled from those parts.
 */
async function writeEveryWay(r: Running, keyPrefix = ""): Promise<Record<string, { sse?: string; keyId?: string }>> {
  const seen: Record<string, { sse?: string; keyId?: string }> = {};
  const small = randomBytes(10_000);
  const smallFile = await r.openai.files.create({ file: await toFile(small, "small.txt"), purpose: "assistants" });
  seen.small = encryption(await head(r.bucket, keyPrefix + smallFile.id));
  expect(sha256(await content(r.openai, smallFile.id))).toBe(sha256(small));

  const large = randomBytes(2 * PART + 77);
  const largeFile = await r.openai.files.create({ file: await toFile(large, "large.bin"), purpose: "assistants" });
  seen.multipart = encryption(await head(r.bucket, keyPrefix + largeFile.id));
  expect(sha256(await content(r.openai, largeFile.id))).toBe(sha256(large));

  const data = randomBytes(300_000);
  const upload = await r.openai.uploads.create({ bytes: data.length, filename: "parts.bin", mime_type: "application/octet-stream", purpose: "assistants" });
  const p1 = await r.openai.uploads.parts.create(upload.id, { data: await toFile(data.subarray(0, 100_000), "p1") });
  const p2 = await r.openai.uploads.parts.create(upload.id, { data: await toFile(data.subarray(100_000), "p2") });
  const partKeys = await listAllKeys(r.bucket, `${keyPrefix}uploads/${upload.id}/`);
  expect(partKeys).toHaveLength(2);
  for (const [i, key] of partKeys.entries()) seen[`part${i + 1}`] = encryption(await head(r.bucket, key));
  const done = await r.openai.uploads.complete(upload.id, { part_ids: [p1.id, p2.id] });
  seen.assembled = encryption(await head(r.bucket, keyPrefix + done.file!.id));
  expect(sha256(await content(r.openai, done.file!.id))).toBe(sha256(data));
  return seen;
}

const everyWay = (value: { sse?: string; keyId?: string }) => ({ small: value, multipart: value, part1: value, part2: value, assembled: value });

describe("server-side encryption (sse)", () => {
  it("is absent without sse (the control: moto reports what was asked for, nothing more)", async () => {
    const r = await start("s3-sse-none", {});
    expect(await writeEveryWay(r)).toEqual(everyWay({ sse: undefined, keyId: undefined }));
  });

  it("sse: AES256 is on every object written", async () => {
    const r = await start("s3-sse-aes", { sse: "AES256" });
    expect(await writeEveryWay(r)).toEqual(everyWay({ sse: "AES256", keyId: undefined }));
  });

  it("sse: aws:kms with sse_kms_key_id (a key created in moto's KMS) is on every object written, with that key", async () => {
    // Moto's S3 does not check that the key exists; the key is created anyway, as it must be on AWS.
    const created = await awsJson(testS3Endpoint(), "kms", "TrentService.CreateKey", { Description: "files test" }, { accessKeyId: "test", secretAccessKey: "test" });
    const keyArn = (created.KeyMetadata as { Arn: string }).Arn;
    expect(keyArn).toMatch(/^arn:aws:kms:/);
    const r = await start("s3-sse-kms", { sse: "aws:kms", sse_kms_key_id: keyArn });
    expect(await writeEveryWay(r)).toEqual(everyWay({ sse: "aws:kms", keyId: keyArn }));
  });

  it("sse: aws:kms without a key id asks for KMS and names no key (S3 then uses the account's aws/s3 key)", async () => {
    const r = await start("s3-sse-kms-default", { sse: "aws:kms" });
    const small = await r.openai.files.create({ file: await toFile(randomBytes(1000), "k.txt"), purpose: "assistants" });
    expect(encryption(await head(r.bucket, small.id))).toEqual({ sse: "aws:kms", keyId: undefined });
  });

  it("sse_kms_key_id without sse: aws:kms stops the server at start-up, naming the key", async () => {
    const dir = await tempDir("s3-sse-bad");
    const config = s3ProviderConfig(testS3Endpoint(), "any-bucket", { type: "sqlite", db_path: join(dir, "f.db") }, { sse: "AES256", sse_kms_key_id: "k-1" });
    const { code, output } = await runServerToExit({ config });
    expect(code).not.toBe(0);
    expect(output).toMatch(/^files: cannot start: .*config\.sse_kms_key_id/m);
  });
});

describe("key_prefix", () => {
  const PREFIX = "tenants/acme/files/";
  let r: Running;
  const foreign = ["other-tenant/file-0123", "tenants/acme/notes.txt", "tenants/acme/file-x"];

  beforeAll(async () => {
    const bucket = await createTestBucket("s3-key-prefix");
    // Objects that are not the service's, beside and just outside the prefix: they must stay untouched.
    const s3 = testS3Client();
    try {
      for (const key of foreign) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `not ours: ${key}` }));
    } finally {
      s3.destroy();
    }
    r = await start("s3-key-prefix", { key_prefix: PREFIX }, bucket);
  });

  it("files, multipart files, upload parts and assembled files all land under the prefix, and nothing outside it", async () => {
    await writeEveryWay(r, PREFIX); // heads every object at prefix + id, parts at prefix + uploads/<id>/
    const ids: string[] = [];
    for await (const f of r.openai.files.list({ limit: 100 })) ids.push(f.id);
    expect(ids).toHaveLength(3);
    const keys = await listAllKeys(r.bucket);
    expect(keys.filter((k) => !foreign.includes(k)).sort()).toEqual(ids.map((id) => PREFIX + id).sort());
    expect(await listMultipartUploads(r.bucket)).toEqual([]);
  });

  it("a multipart upload in flight is under the prefix too", async () => {
    // A form sent in two halves: the second only once S3 shows the multipart upload under way.
    const boundary = `files-${randomBytes(8).toString("hex")}`;
    const req = http.request(`${r.server.baseUrl}/v1/files`, { method: "POST", headers: { "content-type": `multipart/form-data; boundary=${boundary}` } });
    const answer = new Promise<{ status?: number; body: string }>((resolve, reject) => {
      req.once("response", (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d));
        res.once("end", () => resolve({ status: res.statusCode, body }));
      });
      req.once("error", reject);
    });
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    req.write(randomBytes(PART + 1)); // a full first part, so it goes out while the rest is held back
    let inFlight: { key: string }[] = [];
    for (let i = 0; i < 200 && inFlight.length === 0; i++) {
      inFlight = await listMultipartUploads(r.bucket);
      if (inFlight.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    req.end(Buffer.concat([randomBytes(PART), Buffer.from(`\r\n--${boundary}--\r\n`)]));
    const { status, body } = await answer;
    expect(status, body).toBe(200);
    const id = (JSON.parse(body) as { id: string }).id;
    expect(inFlight).toEqual([expect.objectContaining({ key: PREFIX + id })]);
    expect(await listMultipartUploads(r.bucket)).toEqual([]);
  });

  it("deleting a file removes its object under the prefix and leaves the other objects alone", async () => {
    const file = await r.openai.files.create({ file: await toFile(randomBytes(500), "d.txt"), purpose: "assistants" });
    expect(await listAllKeys(r.bucket, PREFIX + file.id)).toEqual([PREFIX + file.id]);
    await r.openai.files.delete(file.id);
    expect(await listAllKeys(r.bucket, PREFIX + file.id)).toEqual([]);
    const left = await listAllKeys(r.bucket);
    for (const key of foreign) expect(left).toContain(key);
  });

  it.each(["../x/", "../x", "/abs/", "tenants/acme", "a/./b/"])("key_prefix %j stops the server at start-up, naming config.key_prefix", async (prefix) => {
    const dir = await tempDir("s3-key-prefix-bad");
    const config = s3ProviderConfig(testS3Endpoint(), "any-bucket", { type: "sqlite", db_path: join(dir, "f.db") }, { key_prefix: prefix });
    const { code, output } = await runServerToExit({ config });
    expect(code).not.toBe(0);
    expect(output).toMatch(/config\.key_prefix: key_prefix must be relative path segments/);
  });
});
