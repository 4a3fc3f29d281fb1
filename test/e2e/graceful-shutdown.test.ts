/**
 * SIGTERM while an upload is streaming: the server refuses new connections but lets the
 * upload finish, then exits 0. The file is complete and durable for the next server.
 */
import { randomBytes } from "node:crypto";
import { expect, it, vi } from "vitest";
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

it("tells open health watchers NOT_SERVING on SIGTERM and exits without waiting out the grace period", async () => {
  const { createClient } = await import("@connectrpc/connect");
  const { createGrpcTransport } = await import("@connectrpc/connect-node");
  const { Health, HealthCheckResponse_ServingStatus: Status } = await import("../../gen/ts/grpc/health/v1/health_pb.js");
  const bucket = await createTestBucket("graceful-watch");
  const dir = await tempDir("graceful-watch");
  const server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
  const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
  const seen: number[] = [];
  const watching = (async () => {
    for await (const res of health.watch({ service: "" })) seen.push(res.status);
  })();
  await vi.waitFor(() => expect(seen).toEqual([Status.SERVING]));
  const started = Date.now();
  expect(await server.stop("SIGTERM")).toBe(0);
  await watching;
  expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
  // The grace period is 30 s; a watcher that held on would keep the process alive that long.
  expect(Date.now() - started).toBeLessThan(10_000);
});
