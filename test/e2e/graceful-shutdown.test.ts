/**
 * SIGTERM while an upload is streaming: the server refuses new connections but lets the
 * upload finish, then exits 0. The file is complete and durable for the next server.
 */
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { s3ProviderConfig, startServer } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

it("finishes an upload in flight after SIGTERM, then exits 0", async () => {
  const bucket = await createTestBucket("graceful");
  const dir = await tempDir("graceful");
  const config = s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }, { part_size_bytes: 5 * MiB });
  const server = await startServer({ config });
  const client = connectClient(server.baseUrl);
  const data = randomBytes(16 * MiB);
  let exited: Promise<number | null> | undefined;
  let refused = false;
  async function* slowly() {
    for (let at = 0; at < data.length; at += MiB) {
      // Half way through, ask the server to stop, and keep sending for a while after.
      if (at === 8 * MiB) exited = server.stop("SIGTERM");
      if (at >= 8 * MiB) await new Promise((r) => setTimeout(r, 100));
      // Meanwhile, new connections are refused.
      if (at === 10 * MiB) refused = await fetch(`${server.baseUrl}/healthz`).then(() => false, () => true);
      yield data.subarray(at, at + MiB);
    }
  }
  const file = await client.upload({ filename: "in-flight.bin", purpose: FilePurpose.BATCH, sizeBytes: BigInt(data.length) }, slowly());
  expect(file.sha256).toBe(sha256(data));
  expect(await exited).toBe(0);
  expect(refused).toBe(true);
  expect(server.output.some((line) => line.includes('"msg":"shutting down"'))).toBe(true);

  // The next server sees the whole file.
  const next = await startServer({ config });
  const download = await connectClient(next.baseUrl).download({ fileId: file.id });
  expect(sha256(download.data)).toBe(sha256(data));
  expect(await next.stop()).toBe(0);
});
