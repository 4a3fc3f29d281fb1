import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, listAllKeys, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

// The REST API shares the port with gRPC, so it is reachable over HTTP/2 cleartext too.
let server: ServerProcess;
let bucket: string;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  bucket = await createTestBucket("rest-http2");
  const dir = await tempDir("rest-http2");
  server = await startServer({
    config: { ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }), server: { limits: { max_file_bytes: 4 * MiB } } },
  });
  session = http2.connect(server.baseUrl);
});

afterAll(async () => {
  session?.close();
  expect(await server?.stop()).toBe(0);
});

function request(headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status: Number(responseHeaders[":status"]), headers: responseHeaders, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

function form(data: Buffer, purpose: string): { type: string; body: Buffer } {
  const b = `h2${randomBytes(6).toString("hex")}`;
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="h2.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n--${b}--\r\n`),
  ]);
  return { type: `multipart/form-data; boundary=${b}`, body };
}

it("uploads, lists, ranges and deletes over HTTP/2", async () => {
  const data = randomBytes(3 * MiB + 5);
  const { type, body } = form(data, "assistants");
  const created = await request({ ":method": "POST", ":path": "/v1/files", "content-type": type }, body);
  expect(created.status, created.body.toString()).toBe(200);
  const file = JSON.parse(created.body.toString()) as { id: string; bytes: number };
  expect(file.bytes).toBe(data.length);

  const whole = await request({ ":method": "GET", ":path": `/v1/files/${file.id}/content` });
  expect(whole.status).toBe(200);
  expect(whole.headers.etag).toBe(`"${sha256(data)}"`);
  expect(sha256(whole.body)).toBe(sha256(data));

  const tail = await request({ ":method": "GET", ":path": `/v1/files/${file.id}/content`, range: "bytes=-100" });
  expect(tail.status).toBe(206);
  expect(tail.headers["content-range"]).toBe(`bytes ${data.length - 100}-${data.length - 1}/${data.length}`);
  expect(tail.body.equals(data.subarray(data.length - 100))).toBe(true);

  const deleted = await request({ ":method": "DELETE", ":path": `/v1/files/${file.id}` });
  expect(JSON.parse(deleted.body.toString())).toEqual({ id: file.id, object: "file", deleted: true });
});

it("refuses an oversize upload with 413 mid-stream, keeps the session usable, and leaves nothing", async () => {
  const { type, body } = form(randomBytes(6 * MiB), "batch");
  const refused = await request({ ":method": "POST", ":path": "/v1/files", "content-type": type }, body);
  expect(refused.status).toBe(413);
  expect(JSON.parse(refused.body.toString()).error.param).toBe("file");
  // The same HTTP/2 connection still serves requests.
  const list = await request({ ":method": "GET", ":path": "/v1/files?purpose=batch" });
  expect(JSON.parse(list.body.toString()).data).toEqual([]);
  expect(await listAllKeys(bucket)).toEqual([]);
});
