/**
 * Limits and disconnects through the real server: an oversize upload is refused while it streams
 * and leaves nothing behind; an oversize message is refused by the protocol layer; a client that
 * walks away mid-download does not disturb the server.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient, grpcJsClient } from "../support/grpc-clients.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { chunked, eventually, MiB, rejection, sha256 } from "../support/test-helpers.js";

const MAX_FILE = 12 * MiB;
const MAX_MESSAGE = 2 * MiB;

let server: ServerProcess;
let bucket: string;

beforeAll(async () => {
  bucket = await createTestBucket("limits");
  const dir = await tempDir("limits");
  server = await startServer({
    config: {
      ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }, { part_size_bytes: 5 * MiB }),
      server: { limits: { max_file_bytes: MAX_FILE, max_message_bytes: MAX_MESSAGE } },
    },
  });
});

afterAll(async () => {
  // Refused requests must not leave HTTP/2 streams open: they would hold a graceful stop for its full 30 s grace.
  const started = Date.now();
  expect(await server?.stop()).toBe(0);
  expect(Date.now() - started).toBeLessThan(10_000);
});

it.each([
  ["connect-node", (url: string) => connectClient(url)],
  ["@grpc/grpc-js", (url: string) => grpcJsClient(url)],
])("refuses a file over max_file_bytes while streaming it (%s), leaving nothing", async (_name, make) => {
  const client = make(server.baseUrl);
  // No declared size: the limit must hold against the bytes themselves, after multipart has begun.
  const err = await rejection(client.upload({ filename: "huge.bin", purpose: FilePurpose.BATCH }, chunked(randomBytes(MAX_FILE + 1), MiB)));
  expect(err.code).toBe(Code.ResourceExhausted);
  expect(err.message).toMatch(/larger than the limit of 12582912 bytes/);
  const declared = await rejection(client.upload({ filename: "huge.bin", purpose: FilePurpose.BATCH, sizeBytes: BigInt(MAX_FILE + 1) }, []));
  expect(declared.code).toBe(Code.ResourceExhausted);
  expect(declared.message).toMatch(/size_bytes 12582913 is larger than the limit/);
  await eventually(async () => {
    expect(await listMultipartUploads(bucket)).toEqual([]);
    expect(await listAllKeys(bucket)).toEqual([]);
  });
  expect((await client.list({})).data).toEqual([]);
  // Exactly at the limit is fine.
  const data = randomBytes(MAX_FILE);
  const file = await client.upload({ filename: "max.bin", purpose: FilePurpose.BATCH }, chunked(data, MiB));
  expect(file.sha256).toBe(sha256(data));
  await client.delete(file.id);
  client.close();
});

it("refuses a single message over max_message_bytes", async () => {
  const client = connectClient(server.baseUrl);
  const err = await rejection(client.upload({ filename: "big-message.bin", purpose: FilePurpose.BATCH }, [randomBytes(MAX_MESSAGE + 1024)]));
  expect(err.code).toBe(Code.ResourceExhausted);
  expect(err.message).toMatch(/message size .* is larger than configured readMaxBytes 2097152/);
  await eventually(async () => expect(await listAllKeys(bucket)).toEqual([]));
});

it("a client that disconnects mid-download leaves the server serving", async () => {
  const client = connectClient(server.baseUrl);
  const data = randomBytes(10 * MiB);
  const file = await client.upload({ filename: "d.bin", purpose: FilePurpose.USER_DATA }, chunked(data, MiB));
  for (let round = 0; round < 5; round++) {
    const controller = new AbortController();
    const raw = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
    let received = 0;
    const err = await rejection(
      (async () => {
        for await (const msg of raw.downloadFile({ fileId: file.id }, { signal: controller.signal })) {
          if (msg.payload.case === "chunk") received += msg.payload.value.byteLength;
          if (received > MiB) controller.abort();
        }
      })(),
    );
    expect(err.code).toBe(Code.Canceled);
    expect(received).toBeLessThan(data.length);
  }
  const full = await client.download({ fileId: file.id });
  expect(sha256(full.data)).toBe(sha256(data));
  const ready = await fetch(`${server.baseUrl}/readyz`);
  expect(ready.status).toBe(200);
  await client.delete(file.id);
});
