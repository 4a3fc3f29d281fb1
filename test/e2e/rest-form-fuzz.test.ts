import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

let server: ServerProcess;
let bucket: string;

beforeAll(async () => {
  bucket = await createTestBucket("rest-form-fuzz");
  const dir = await tempDir("rest-form-fuzz");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
});

afterAll(async () => {
  // A crash would show here as a non-zero (or signal) exit instead of a clean 0.
  expect(await server?.stop()).toBe(0);
});

/** Mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BOUNDARY = "fuzzBoundary123";
const PARTS = [
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nnope\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n${"x".repeat(5000)}\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename*=utf-8''%0d%0a.txt\r\n\r\nyy\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\nnot a file\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="expires_after[anchor]"\r\n\r\ncreated_at\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="expires_after[seconds]"\r\n\r\n-5\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="other"; filename="b.bin"\r\n\r\nzz\r\n`,
  `--${BOUNDARY}\r\nContent-Disposition: broken\r\n\r\n??\r\n`,
  `--${BOUNDARY}\r\nX: y\r\n\r\n`,
];

function randomForm(next: () => number): Buffer {
  const count = 1 + Math.floor(next() * 5);
  let body = "";
  for (let i = 0; i < count; i++) body += PARTS[Math.floor(next() * PARTS.length)];
  if (next() < 0.8) body += `--${BOUNDARY}--\r\n`;
  const bytes = Buffer.from(body);
  const mutation = next();
  if (mutation < 0.25) return bytes.subarray(0, Math.floor(next() * bytes.length)); // truncated
  if (mutation < 0.5) {
    for (let i = 0; i < 3; i++) bytes[Math.floor(next() * bytes.length)] = Math.floor(next() * 256); // corrupted
  }
  return bytes;
}

// Whatever a client sends, the answer is a success or a client error in OpenAI's shape, the
// server keeps running, and nothing it refused is left in the bucket.
it("answers 300 random, truncated and corrupted forms with 200 or a 4xx, and stays up", async () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261127);
  const next = rng(seed);
  const created: string[] = [];
  for (let i = 0; i < 300; i++) {
    const body = randomForm(next);
    const shown = `seed ${seed}, case ${i}\n--- body ---\n${body.toString("latin1").slice(0, 600)}`;
    const res = await fetch(`${server.baseUrl}/v1/files`, {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${BOUNDARY}` },
      body,
      signal: AbortSignal.timeout(10_000),
    }).catch((err: unknown) => {
      throw new Error(`no answer (${String(err)}) for ${shown}`);
    });
    const text = await res.text();
    const context = `${res.status} ${text} for ${shown}`;
    expect([200, 400, 413, 415], context).toContain(res.status);
    const json = JSON.parse(text) as { id?: string; error?: Record<string, unknown> };
    if (res.status === 200) created.push(json.id!);
    else expect(Object.keys(json.error!).sort(), context).toEqual(["code", "message", "param", "type"]);
  }
  expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  expect((await listAllKeys(bucket)).sort()).toEqual([...created].sort());
  expect(await listMultipartUploads(bucket)).toEqual([]);
}, 120_000);
