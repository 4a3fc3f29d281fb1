import { randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import {
  CreateMultipartUploadCommand,
  GetBucketLocationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  UploadPartCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, describe, expect, it } from "vitest";
import { ensureBucket } from "../../src/storage/bucket.js";
import { LocalFsObjectStore } from "../../src/storage/local-fs-object-store.js";
import { createS3Client, signsPayloads } from "../../src/storage/s3-client.js";
import { S3ObjectStore } from "../../src/storage/s3-object-store.js";
import { objectStoreContract } from "../contract/object-store.contract.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Client, testS3Endpoint, testS3Store } from "../support/env.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { freePort } from "../support/moto.js";
import { startS3FaultProxy } from "../support/s3-fault-proxy.js";
import { bodyOf, readAll, sha256 } from "../support/test-helpers.js";

const MiB = 1024 * 1024;
const PART = 5 * MiB;

const clients: S3Client[] = [];
/** A client built the way the service builds it, pointed at the test endpoint. */
function serviceClient(region = "us-east-1", endpointUrl = testS3Endpoint(), extra: { maxAttempts?: number } = {}): S3Client {
  const client = createS3Client({
    region,
    endpointUrl,
    accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "test",
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "test",
    ...extra,
  });
  clients.push(client);
  return client;
}
afterAll(() => {
  for (const c of clients) c.destroy();
});

objectStoreContract(`S3ObjectStore on ${testS3Store()}`, async () => {
  const bucket = await createTestBucket("object-store-contract");
  return {
    store: new S3ObjectStore({ client: serviceClient(), bucket, partSizeBytes: PART, partConcurrency: 4 }),
    keysLeft: () => listAllKeys(bucket),
    pendingMultipart: async () => (await listMultipartUploads(bucket)).length,
    partSizeBytes: PART,
    makeIncomplete: async (key) => void (await startMultipart(serviceClient(), bucket, key)),
  };
});

objectStoreContract("LocalFsObjectStore", async () => {
  const dir = await tempDir("local-object-store");
  return {
    store: new LocalFsObjectStore({ dir }),
    keysLeft: () => listFiles(dir),
    partSizeBytes: PART,
    // What a put killed before its rename leaves: a temp file in the store's private folder.
    makeIncomplete: async () => {
      await fs.mkdir(path.join(dir, ".tmp"), { recursive: true });
      await fs.writeFile(path.join(dir, ".tmp", `${randomUUID()}.part`), randomBytes(100));
    },
  };
});

objectStoreContract("MemoryObjectStore", async () => {
  const store = new MemoryObjectStore();
  return { store, keysLeft: async () => store.keys(), partSizeBytes: PART, makeIncomplete: async (key) => void store.addIncomplete(key) };
});

/** A multipart upload with one part, never completed: what a server killed mid-put leaves in S3. */
async function startMultipart(client: S3Client, bucket: string, key: string): Promise<string> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
  return UploadId!;
}

/** A full GC on demand, without needing the worker started with --expose-gc. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** Every file under `dir`, as a relative path: temp files count, they must not leak either. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe("S3ObjectStore specifics", () => {
  it("follows every page when listing objects and unfinished uploads", async () => {
    const bucket = await createTestBucket("object-store-list-pages");
    const client = serviceClient();
    const store = new S3ObjectStore({ client, bucket, partSizeBytes: PART });
    const keys = Array.from({ length: 7 }, (_, i) => `p/${i}-${randomUUID()}`);
    for (const key of keys) await store.put(key, bodyOf(randomBytes(10)), { contentType: "text/plain" });
    await store.put("outside", bodyOf(randomBytes(1)), { contentType: "text/plain" });
    const listed: string[] = [];
    for await (const o of store.list("p/", { pageSize: 2 })) listed.push(o.key);
    expect(listed).toEqual([...keys].sort());

    // Two uploads on one key too, so paging has to carry the upload id marker as well as the key.
    const uploadKeys = [...keys.slice(0, 4), keys[0]!];
    const ids = [];
    for (const key of uploadKeys) ids.push(await startMultipart(client, bucket, key));
    await startMultipart(client, bucket, "outside");
    const writes = [];
    // s3proxy answers 501 to max-uploads and key-marker, and always lists every upload at once.
    const uploadPages = testS3Store() === "s3proxy" ? {} : { pageSize: 2 };
    for await (const w of store.listIncomplete("p/", uploadPages)) writes.push(w);
    expect(writes.map((w) => w.id).sort()).toEqual([...ids].sort());
    for (const w of writes) await store.abortIncomplete(w);
    expect((await listMultipartUploads(bucket)).map((u) => u.key)).toEqual(["outside"]);
  });

  it("keeps memory bounded while streaming 200 MiB", async () => {
    const bucket = await createTestBucket("object-store-memory");
    const concurrency = 4;
    const store = new S3ObjectStore({ client: serviceClient(), bucket, partSizeBytes: PART, partConcurrency: concurrency });
    const total = 200 * MiB;
    const chunk = 256 * 1024;
    const pattern = randomBytes(MiB);
    // Fresh buffers, as a network source hands them over.
    async function* body(size: number) {
      for (let sent = 0; sent < size; sent += chunk) {
        const buf = Buffer.allocUnsafe(Math.min(chunk, size - sent));
        pattern.copy(buf, 0, sent % MiB, (sent % MiB) + buf.byteLength);
        yield buf;
      }
    }
    // Load the SDK's code paths and open sockets first, so they do not count as growth.
    await store.put("warmup", body(10), { contentType: "application/octet-stream" });

    // Collecting before each sample measures what the upload actually holds, which is what must
    // stay bounded: the parts in flight plus the one being filled, in reused buffers, and the SDK.
    const gc = exposeGc();
    gc();
    const start = process.memoryUsage();
    const live = (m: NodeJS.MemoryUsage) => m.arrayBuffers + m.heapUsed;
    let livePeak = live(start);
    let rssPeak = start.rss;
    const sampler = setInterval(() => {
      gc();
      const m = process.memoryUsage();
      livePeak = Math.max(livePeak, live(m));
      rssPeak = Math.max(rssPeak, m.rss);
    }, 50);
    try {
      // With a signal, as every transport passes one: racing chunks against it must not retain them.
      const signal = new AbortController().signal;
      const put = await store.put("big", body(total), { contentType: "application/octet-stream", sizeHint: total, signal });
      expect(put.bytes).toBe(total);
    } finally {
      clearInterval(sampler);
    }
    const liveGrowth = livePeak - live(start);
    const rssGrowth = rssPeak - start.rss;
    // The slack covers the SDK, sockets and heap noise when other test files run alongside (up to
    // about 46 MiB of live growth seen then); lib-storage's fresh buffers still grew RSS past it.
    const limit = (concurrency + 2) * PART + 24 * MiB;
    console.log(
      `[memory] 200 MiB put: live growth ${(liveGrowth / MiB).toFixed(1)} MiB, rss growth ` +
        `${(rssGrowth / MiB).toFixed(1)} MiB (limit ${(limit / MiB).toFixed(0)} MiB)`,
    );
    expect(liveGrowth).toBeLessThan(limit);
    // Reused part buffers keep RSS there too: fresh ones per part (as lib-storage allocates them)
    // grew it by about 63 MiB here, waiting for the collector.
    expect(rssGrowth).toBeLessThan(limit);
    await store.delete("big");
    await store.delete("warmup");
  });

  it("removes an object already written when the signal fires during the final request", async () => {
    const bucket = await createTestBucket("object-store-late-abort");
    for (const [size, finalCommand] of [
      [1_000, "PutObjectCommand"],
      [PART + 1, "CompleteMultipartUploadCommand"],
    ] as const) {
      const client = serviceClient();
      const controller = new AbortController();
      const reason = new Error("cancelled while the object was being committed");
      // Fires the signal exactly as the request that makes the object visible goes out.
      client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === finalCommand) controller.abort(reason);
          return next(args);
        },
        { step: "initialize", name: "abortOnFinalRequest" },
      );
      const store = new S3ObjectStore({ client, bucket, partSizeBytes: PART });
      const body = (async function* () {
        yield randomBytes(size);
      })();
      await expect(store.put(`late-${size}`, body, { contentType: "text/plain", signal: controller.signal })).rejects.toBe(reason);
      expect(await listAllKeys(bucket)).toEqual([]);
      expect(await listMultipartUploads(bucket)).toEqual([]);
    }
  });

  // s3proxy answers 501 NotImplemented to x-amz-server-side-encryption (README, "S3-compatible stores").
  it.skipIf(testS3Store() === "s3proxy")("sets the content type and server-side encryption on single and multipart objects", async () => {
    const bucket = await createTestBucket("object-store-sse");
    const client = serviceClient();
    const store = new S3ObjectStore({ client, bucket, partSizeBytes: PART, serverSideEncryption: "AES256" });
    for (const size of [10, PART + 1]) {
      const key = `sse-${size}`;
      await store.put(key, bodyOf(randomBytes(size)), { contentType: "text/csv" });
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentType).toBe("text/csv");
      expect(head.ServerSideEncryption).toBe("AES256");
    }
  });

  it("composes stored objects inside S3, in order, and says when it cannot", async () => {
    const bucket = await createTestBucket("object-store-compose");
    const store = new S3ObjectStore({ client: serviceClient(), bucket, partSizeBytes: PART });
    const parts = [randomBytes(6 * MiB), randomBytes(5 * MiB), randomBytes(MiB + 7)];
    const sources: { key: string; bytes: number }[] = [];
    for (const [i, bytes] of parts.entries()) {
      const key = `parts/p${i}`;
      await store.put(key, bodyOf(bytes), { contentType: "application/octet-stream" });
      sources.push({ key, bytes: bytes.length });
    }
    const whole = Buffer.concat(parts);
    expect(await store.compose("files/whole", sources, { contentType: "text/csv" })).toEqual({ bytes: whole.length });
    expect(sha256(await readAll(await store.get("files/whole", undefined)))).toBe(sha256(whole));
    const head = await serviceClient().send(new HeadObjectCommand({ Bucket: bucket, Key: "files/whole" }));
    expect(head.ContentType).toBe("text/csv");
    // The sources are copied, not moved.
    for (const source of sources) expect(await store.head(source.key)).toEqual({ bytes: source.bytes });

    // S3 refuses parts under 5 MiB except the last, and more than 10,000 parts: not composable.
    expect(await store.compose("files/small-first", [sources[2]!, sources[0]!], { contentType: "text/plain" })).toBeUndefined();
    expect(await store.compose("files/none", [], { contentType: "text/plain" })).toBeUndefined();
    // One part's worth or less is cheaper to write again as one PutObject.
    expect(await store.compose("files/one-part", [sources[1]!], { contentType: "text/plain" })).toBeUndefined();
    expect(await store.compose("files/many", Array.from({ length: 10_001 }, () => sources[0]!), { contentType: "text/plain" })).toBeUndefined();

    // A missing source: not_found, and nothing left behind (no object, no multipart upload).
    const missing = [sources[0]!, { key: "parts/gone", bytes: 5 * MiB }, sources[2]!];
    await expect(store.compose("files/broken", missing, { contentType: "text/plain" })).rejects.toMatchObject({ code: "not_found" });
    expect(await listAllKeys(bucket)).toEqual(["files/whole", "parts/p0", "parts/p1", "parts/p2"]);
    expect(await listMultipartUploads(bucket)).toEqual([]);
  });

  it("reports a missing bucket as unavailable, without naming it", async () => {
    const store = new S3ObjectStore({ client: serviceClient(), bucket: `missing-${randomUUID()}` });
    const err = await store.ping().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "unavailable" });
    expect((err as Error).message).not.toContain("missing-");
    await expect(store.get("k", undefined)).rejects.toMatchObject({ code: "unavailable" });
  });
});

describe("createS3Client", () => {
  it.each([
    ["never", "unsigned"],
    ["always", "signed"],
    ["auto", "signed"], // the proxy is plain http
  ] as const)("payload_signing %s: PutObject and UploadPart bodies are %s, and stored intact", async (setting, expected) => {
    const bucket = await createTestBucket(`object-store-signing-${setting}`);
    const proxy = await startS3FaultProxy(testS3Endpoint());
    try {
      const client = createS3Client({ region: "us-east-1", endpointUrl: proxy.endpoint, accessKeyId: "test", secretAccessKey: "test", payloadSigning: setting });
      clients.push(client);
      const store = new S3ObjectStore({ client, bucket, partSizeBytes: PART });
      for (const size of [1000, 2 * PART + 5]) {
        const bytes = randomBytes(size);
        await store.put(`k${size}`, bodyOf(bytes), { contentType: "application/octet-stream" });
        expect(sha256(await readAll(await store.get(`k${size}`, undefined)))).toBe(sha256(bytes));
      }
      const bodies = [...proxy.requests("PutObject"), ...proxy.requests("UploadPart")];
      expect(bodies).toHaveLength(4);
      for (const r of bodies) {
        if (expected === "unsigned") expect(r.contentSha256).toBe("UNSIGNED-PAYLOAD");
        else expect(r.contentSha256).toMatch(/^[0-9a-f]{64}$/);
      }
    } finally {
      await proxy.close();
    }
  });

  // s3proxy answers 501 NotImplemented to the SDK's flexible checksums: it needs WHEN_REQUIRED, this service's default there.
  it.skipIf(testS3Store() === "s3proxy")("with AWS's default checksums (WHEN_SUPPORTED) and unsigned payloads, single and multipart puts and compose store the exact bytes", async () => {
    const bucket = await createTestBucket("object-store-aws-defaults");
    const client = createS3Client({
      region: "us-east-1",
      endpointUrl: testS3Endpoint(),
      accessKeyId: "test",
      secretAccessKey: "test",
      payloadSigning: "never",
      requestChecksumCalculation: "WHEN_SUPPORTED",
      responseChecksumValidation: "WHEN_SUPPORTED",
    });
    clients.push(client);
    const store = new S3ObjectStore({ client, bucket, partSizeBytes: PART });
    const bodies = [randomBytes(1000), randomBytes(2 * PART + 3)];
    for (const [i, bytes] of bodies.entries()) {
      await store.put(`k${i}`, bodyOf(bytes), { contentType: "application/octet-stream" });
      expect(sha256(await readAll(await store.get(`k${i}`, undefined)))).toBe(sha256(bytes));
    }
    const composed = await store.compose("joined", [{ key: "k1", bytes: bodies[1]!.length }, { key: "k0", bytes: 1000 }], { contentType: "text/plain" });
    expect(composed).toEqual({ bytes: bodies[1]!.length + 1000 });
    expect(sha256(await readAll(await store.get("joined", undefined)))).toBe(sha256(Buffer.concat([bodies[1]!, bodies[0]!])));
  });

  it("signs payloads by default only over plain http", () => {
    expect(signsPayloads("auto", "http://minio.internal:9000")).toBe(true);
    expect(signsPayloads("auto", "https://minio.internal")).toBe(false);
    expect(signsPayloads("auto", undefined)).toBe(false); // AWS, over https
    expect(signsPayloads("always", "https://s3.amazonaws.com")).toBe(true);
    expect(signsPayloads("never", "http://127.0.0.1:9000")).toBe(false);
  });

  it("defaults to path style and WHEN_REQUIRED checksums for a custom endpoint", async () => {
    const client = serviceClient();
    expect(client.config.forcePathStyle).toBe(true);
    expect(await client.config.requestChecksumCalculation()).toBe("WHEN_REQUIRED");
    expect(await client.config.responseChecksumValidation()).toBe("WHEN_REQUIRED");
  });

  it("keeps the SDK defaults for AWS, and honours explicit settings", async () => {
    const aws = createS3Client({ region: "eu-west-1" });
    clients.push(aws);
    expect(aws.config.forcePathStyle).toBeFalsy();
    expect(await aws.config.requestChecksumCalculation()).toBe("WHEN_SUPPORTED");
    const explicit = createS3Client({
      region: "eu-west-1",
      endpointUrl: "http://127.0.0.1:9",
      forcePathStyle: false,
      requestChecksumCalculation: "WHEN_SUPPORTED",
    });
    clients.push(explicit);
    expect(explicit.config.forcePathStyle).toBe(false);
    expect(await explicit.config.requestChecksumCalculation()).toBe("WHEN_SUPPORTED");
  });

  it("refuses half a key pair", () => {
    expect(() => createS3Client({ region: "us-east-1", accessKeyId: "AKIA" })).toThrow(/both/);
  });
});

describe("ensureBucket", () => {
  it("names a missing bucket and says how to fix it when auto-create is off", async () => {
    const bucket = `t-missing-${randomUUID()}`;
    const err = await ensureBucket(serviceClient(), bucket, { autoCreate: false, region: "us-east-1" }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`'${bucket}'`);
    expect((err as Error).message).toContain("auto_create_bucket: true");
  });

  it("creates a missing bucket when auto-create is on, and accepts an existing one", async () => {
    const client = serviceClient();
    const bucket = `t-auto-${randomUUID()}`;
    await ensureBucket(client, bucket, { autoCreate: true, region: "us-east-1" });
    await expect(client.send(new HeadBucketCommand({ Bucket: bucket }))).resolves.toBeDefined();
    await ensureBucket(client, bucket, { autoCreate: false, region: "us-east-1" });
    await ensureBucket(client, bucket, { autoCreate: true, region: "us-east-1" });
  });

  // s3proxy's filesystem provider has one location and refuses any LocationConstraint.
  it.skipIf(testS3Store() === "s3proxy")("creates the bucket in the configured region outside us-east-1", async () => {
    const client = serviceClient("eu-west-1");
    const bucket = `t-auto-eu-${randomUUID()}`;
    await ensureBucket(client, bucket, { autoCreate: true, region: "eu-west-1" });
    const where = await client.send(new GetBucketLocationCommand({ Bucket: bucket }));
    expect(where.LocationConstraint).toBe("eu-west-1");
  });

  it("names the endpoint it cannot reach", async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const client = serviceClient("us-east-1", endpoint, { maxAttempts: 1 });
    const err = await ensureBucket(client, "any-bucket", { autoCreate: true, region: "us-east-1" }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(endpoint);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it("explains access denied", async () => {
    const denied = Object.assign(new Error("Forbidden"), { name: "403", $metadata: { httpStatusCode: 403 } });
    const client = { send: async () => Promise.reject(denied) } as unknown as S3Client;
    const err = await ensureBucket(client, "locked", { autoCreate: true, region: "us-east-1" }).catch((e: unknown) => e);
    expect((err as Error).message).toContain("access denied to bucket 'locked'");
    expect((err as Error).message).toMatch(/s3:PutObject/);
    expect((err as Error).cause).toBe(denied);
  });
});

describe("LocalFsObjectStore specifics", () => {
  it("rejects keys that could escape or alias its directory", async () => {
    const store = new LocalFsObjectStore({ dir: await tempDir("local-keys") });
    for (const bad of ["", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a/./b", "a b", "a\\b", ".tmp/x", "é"]) {
      await expect(store.head(bad), bad).rejects.toThrow(/invalid object key/);
    }
    await expect(store.put("prefix/sub/file-1.bin", bodyOf(Buffer.from("x")), { contentType: "text/plain" })).resolves.toEqual({ bytes: 1 });
  });

  it("never lists its temp files as objects, nor lists inside its temp folder", async () => {
    const dir = await tempDir("local-list-tmp");
    const store = new LocalFsObjectStore({ dir });
    await store.put("file-a", bodyOf(Buffer.from("a")), { contentType: "text/plain" });
    await fs.mkdir(path.join(dir, ".tmp"), { recursive: true });
    await fs.writeFile(path.join(dir, ".tmp", "left-over.part"), "x");
    const keys: string[] = [];
    for await (const o of store.list("")) keys.push(o.key);
    expect(keys).toEqual(["file-a"]);
    await expect((async () => { for await (const _ of store.list(".tmp/")) void _; })()).rejects.toThrow(/invalid key prefix/);
    const writes: string[] = [];
    for await (const w of store.listIncomplete("any/prefix/")) writes.push(w.id);
    expect(writes).toEqual(["left-over.part"]);
    await expect(store.abortIncomplete({ key: null, id: "../file-a", lastModified: 0 })).rejects.toThrow(/invalid temp file name/);
    expect(await store.head("file-a")).toEqual({ bytes: 1 });
  });

  it("fails ping when the directory cannot be written", async () => {
    const file = path.join(await tempDir("local-ping"), "not-a-dir");
    await fs.writeFile(file, "");
    await expect(new LocalFsObjectStore({ dir: file }).ping()).rejects.toMatchObject({ code: "unavailable" });
  });
});

describe("MemoryObjectStore fault injection", () => {
  it("fails the next put after n bytes, and only that one", async () => {
    const store = new MemoryObjectStore();
    const injected = store.failNextPutAfterBytes(5);
    const body = async function* () { yield Buffer.from("0123456789"); };
    await expect(store.put("a", body(), { contentType: "text/plain" })).rejects.toBe(injected);
    expect(store.keys()).toEqual([]);
    await expect(store.put("a", body(), { contentType: "text/plain" })).resolves.toEqual({ bytes: 10 });
  });
});
