import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { resetPeakRss } from "../../bench/proc.js";
import { processMemory } from "../support/proc-memory.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const MiB = 1024 * 1024;
const SIZE = 384 * MiB;

let server: ServerProcess;

beforeAll(async () => {
  const bucket = await createTestBucket("server-memory");
  const dir = await tempDir("server-memory");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
});

afterAll(async () => {
  await server?.stop();
});

// Bounded memory is a behaviour, not a speed: the server must not hold a file (or a growing
// share of it) while streaming. Parts in flight (4 × 8 MiB), flow-control windows and garbage
// not yet collected stay well under the file size; buffering the file would not.
it("streams a 384 MiB upload and download without the server's memory following the file size", async () => {
  const client = connectClient(server.baseUrl);
  const block = randomBytes(MiB);
  const blocks = function* (count: number) {
    for (let i = 0; i < count; i++) yield block;
  };
  const warm = await client.upload({ filename: "warm.bin", purpose: FilePurpose.BATCH }, blocks(16));
  await client.download({ fileId: warm.id });
  const pid = server.child.pid!;
  resetPeakRss(pid); // the peak from here on, not the warm-up's
  const idle = processMemory(pid, "VmRSS");

  const expected = createHash("sha256");
  for (const b of blocks(SIZE / MiB)) expected.update(b);
  const file = await client.upload({ filename: "big.bin", purpose: FilePurpose.BATCH, sizeBytes: BigInt(SIZE) }, blocks(SIZE / MiB));
  expect(file.sha256).toBe(expected.digest("hex"));
  const afterUpload = processMemory(pid, "VmHWM") - idle;

  const got = createHash("sha256");
  let received = 0;
  const { createClient } = await import("@connectrpc/connect");
  const { createGrpcTransport } = await import("@connectrpc/connect-node");
  const { FilesService } = await import("../../gen/ts/files/v1/files_pb.js");
  const raw = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
  for await (const msg of raw.downloadFile({ fileId: file.id })) {
    if (msg.payload.case === "chunk") {
      got.update(msg.payload.value);
      received += msg.payload.value.byteLength;
    }
  }
  expect(received).toBe(SIZE);
  expect(got.digest("hex")).toBe(file.sha256);
  const afterDownload = processMemory(pid, "VmHWM") - idle;

  console.log(`[server memory] idle ${(idle / MiB).toFixed(0)} MiB; peak growth after upload ${(afterUpload / MiB).toFixed(0)} MiB, after download ${(afterDownload / MiB).toFixed(0)} MiB`);
  expect(afterUpload).toBeLessThan(128 * MiB);
  expect(afterDownload).toBeLessThan(128 * MiB);
});
