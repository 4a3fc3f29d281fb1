import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { resetPeakRss } from "../../bench/proc.js";
import { processMemory } from "../support/proc-memory.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB } from "../support/test-helpers.js";

const SIZE = 256 * MiB;

let server: ServerProcess;

beforeAll(async () => {
  const bucket = await createTestBucket("rest-memory");
  const dir = await tempDir("rest-memory");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
});

afterAll(async () => {
  await server?.stop();
});

/** POSTs a multipart form whose file part is `blocks` generated on the fly: the client holds one block at a time. */
function postMultipart(url: string, block: Buffer, count: number, purposeLast: boolean, field = "file"): Promise<{ status: number; body: string }> {
  const boundary = `----bound${randomBytes(8).toString("hex")}`;
  const purpose = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n`;
  const fileHead = `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const head = purposeLast ? fileHead : purpose + fileHead;
  const tail = purposeLast ? `\r\n${purpose}--${boundary}--\r\n` : `\r\n--${boundary}--\r\n`;
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      headers: {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": Buffer.byteLength(head) + block.length * count + Buffer.byteLength(tail),
      },
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("error", reject);
    (async () => {
      req.write(head);
      for (let i = 0; i < count; i++) {
        if (!req.write(block)) await new Promise((r) => req.once("drain", r));
      }
      req.end(tail);
    })().catch(reject);
  });
}

// Streaming is a behaviour: the server must not hold the file, or a share of it that grows with
// its size. Parts in flight (4 × 8 MiB), parser buffers and uncollected garbage stay well under 256 MiB.
it("takes a 256 MiB multipart upload (purpose after the file) and serves it back, without its memory following the file", async () => {
  const block = randomBytes(MiB);
  const warm = await postMultipart(`${server.baseUrl}/v1/files`, block, 16, false);
  expect(warm.status).toBe(200);
  const warmId = (JSON.parse(warm.body) as { id: string }).id;
  await (await fetch(`${server.baseUrl}/v1/files/${warmId}/content`)).arrayBuffer();
  const pid = server.child.pid!;
  // The peak from here on, not since the process started (Linux resets VmHWM to VmRSS).
  resetPeakRss(pid);
  const idle = processMemory(pid, "VmRSS");

  const expected = createHash("sha256");
  for (let i = 0; i < SIZE / MiB; i++) expected.update(block);
  const digest = expected.digest("hex");

  const { status, body } = await postMultipart(`${server.baseUrl}/v1/files`, block, SIZE / MiB, true);
  expect(status, body).toBe(200);
  const file = JSON.parse(body) as { id: string; bytes: number; purpose: string };
  expect(file.bytes).toBe(SIZE);
  expect(file.purpose).toBe("batch");
  const uploadGrowth = processMemory(pid, "VmHWM") - idle;

  const res = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`);
  expect(res.status).toBe(200);
  expect(res.headers.get("etag")).toBe(`"${digest}"`);
  const got = createHash("sha256");
  let received = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    got.update(chunk);
    received += chunk.byteLength;
  }
  expect(received).toBe(SIZE);
  expect(got.digest("hex")).toBe(digest);
  const peakGrowth = processMemory(pid, "VmHWM") - idle;

  console.log(`REST 256 MiB: peak RSS growth after upload ${(uploadGrowth / MiB).toFixed(0)} MiB, after download ${(peakGrowth / MiB).toFixed(0)} MiB`);
  expect(uploadGrowth).toBeLessThan(128 * MiB);
  expect(peakGrowth).toBeLessThan(128 * MiB);
}, 300_000);

// The Uploads path holds no part whole either: parts of 64 MiB (OpenAI's largest), two at a time,
// each streamed to its own object, then assembled by streaming them back in order.
it("takes a 256 MiB Upload in four 64 MiB parts and assembles it, without its memory following the file", async () => {
  const pid = server.child.pid!;
  const peakBefore = processMemory(pid, "VmHWM");
  // This test's own peak: the earlier test's 256 MiB transfer set VmHWM, and RSS may have shrunk
  // since, so a peak since the process started would count that test's memory against this one.
  const reset = resetPeakRss(pid);
  const idle = processMemory(pid, "VmRSS");
  const block = randomBytes(MiB);
  const parts = 4;
  const partMiB = 64;
  const created = await fetch(`${server.baseUrl}/v1/uploads`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ filename: "parts.bin", purpose: "batch", bytes: parts * partMiB * MiB, mime_type: "application/octet-stream" }),
  });
  const upload = (await created.json()) as { id: string };
  const ids: string[] = [];
  for (let i = 0; i < parts; i += 2) {
    const pair = await Promise.all(
      [i, i + 1].map((n) => postMultipart(`${server.baseUrl}/v1/uploads/${upload.id}/parts`, block, partMiB, false, "data").then((r) => ({ n, r }))),
    );
    for (const { n, r } of pair) {
      expect(r.status, r.body).toBe(200);
      ids[n] = (JSON.parse(r.body) as { id: string }).id;
    }
  }
  const completed = await fetch(`${server.baseUrl}/v1/uploads/${upload.id}/complete`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ part_ids: ids }),
  });
  const done = (await completed.json()) as { status: string; file: { id: string; bytes: number } };
  expect(done.status).toBe("completed");
  expect(done.file.bytes).toBe(parts * partMiB * MiB);
  const expected = createHash("sha256");
  for (let i = 0; i < parts * partMiB; i++) expected.update(block);
  const head = await fetch(`${server.baseUrl}/v1/files/${done.file.id}/content`, { method: "HEAD" });
  expect(head.headers.get("etag")).toBe(`"${expected.digest("hex")}"`);
  const growth = processMemory(pid, "VmHWM") - idle;
  console.log(`Uploads 4 x 64 MiB: peak RSS ${(processMemory(pid, "VmHWM") / MiB).toFixed(0)} MiB (before: peak ${(peakBefore / MiB).toFixed(0)}${reset ? ", reset" : ""}, RSS ${(idle / MiB).toFixed(0)}), growth ${(growth / MiB).toFixed(0)} MiB`);
  expect(growth).toBeLessThan(128 * MiB);
}, 300_000);
