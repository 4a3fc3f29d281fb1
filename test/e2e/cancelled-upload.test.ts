/**
 * A streaming gRPC upload that the client cancels right after its first part went out must end
 * with nothing left in the store, promptly, whatever the store does with the part in flight: the
 * service gives up on a part request that is not answered, instead of waiting for it before it
 * aborts the multipart upload. Runs on moto and on s3proxy, through the S3 fault proxy, which
 * logs what reached the store and withholds answers.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint, testS3Store } from "../support/env.js";
import { startS3FaultProxy, type S3FaultProxy } from "../support/s3-fault-proxy.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, MiB, rejection } from "../support/test-helpers.js";

const PART = 8 * MiB; // the default part size
let server: ServerProcess;
let proxy: S3FaultProxy;
let bucket: string;
let client: FilesTestClient;

beforeAll(async () => {
  bucket = await createTestBucket("cancelled-upload");
  proxy = await startS3FaultProxy(testS3Endpoint());
  const dir = await tempDir("cancelled-upload");
  server = await startServer({ config: s3ProviderConfig(proxy.endpoint, bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
  client = grpcJsClient(server.baseUrl);
});

afterAll(async () => {
  client?.close();
  expect(await server?.stop()).toBe(0);
  await proxy?.close();
});

describe(`a cancelled streaming upload on ${testS3Store()}`, () => {
  it.each([
    ["the store answered its first part", undefined, true],
    ["the store never answers the part in flight", "stall", false],
    ["the store stored the part in flight but its answer never comes", "stall-after-upstream", false],
  ] as const)("when %s, the multipart upload is aborted within 5 s and nothing is left", async (_label, fault, answered) => {
    proxy.reset();
    if (fault) proxy.inject({ operation: "UploadPart", fault, times: 1 });
    const keysBefore = await listAllKeys(bucket);
    const controller = new AbortController();
    const partSeen = () => proxy.requests("UploadPart").some((r) => !answered || r.status !== undefined);
    let sent = 0;
    async function* body() {
      // A full part goes out once the next byte arrives: one part and a bit.
      while (sent <= PART) {
        const chunk = randomBytes(MiB);
        sent += chunk.length;
        yield chunk;
      }
      await eventually(async () => expect(partSeen()).toBe(true), 30_000);
      controller.abort();
      await new Promise(() => {}); // the client would send more, but has cancelled
    }
    const err = await rejection(client.upload({ filename: "cancelled.bin", purpose: FilePurpose.BATCH }, body(), controller.signal));
    expect(err.code).toBe(Code.Canceled);
    const cancelledAt = Date.now();
    if (fault) {
      // The part in flight is given up on, not waited for: the abort goes out at once.
      await eventually(async () => expect(proxy.requests("AbortMultipartUpload").map((r) => r.status)).toEqual([204]), 5_000);
      expect(proxy.requests("CompleteMultipartUpload")).toEqual([]);
    }
    await eventually(async () => {
      expect(await listMultipartUploads(bucket)).toEqual([]);
      expect(await listAllKeys(bucket)).toEqual(keysBefore);
    }, 5_000);
    expect(Date.now() - cancelledAt).toBeLessThan(5_000);
    expect((await client.list({})).data.filter((f) => f.filename === "cancelled.bin")).toEqual([]);
  });
});
