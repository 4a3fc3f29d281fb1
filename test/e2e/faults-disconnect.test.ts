/**
 * Clients that go away mid-transfer, over REST (HTTP/1.1) and gRPC (HTTP/2), many times over:
 * each aborted upload's S3 multipart upload is aborted (it is seen open first, then gone), no row
 * is written, and afterwards the server's open file descriptors and resident memory are back near
 * where they were, and it still serves.
 */
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { gate, gatedBytes, restUpload } from "../support/faults.js";
import { connectClient, type FilesTestClient } from "../support/grpc-clients.js";
import { processMemory } from "../support/proc-memory.js";
import { sql } from "../support/reconcile-process.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

const SIZE = 32 * MiB;
const PART = 5 * MiB;
/** Sent before an upload is cut: past two parts, so S3 has a multipart upload open. */
const CUT_UPLOAD_AT = 12 * MiB;
/** Received before a download is cut. */
const CUT_DOWNLOAD_AT = 4 * MiB;
const ROUNDS = 10; // × 4 kinds (REST and gRPC, upload and download) = 40 aborted transfers
const KEY_PREFIX = "faults-dc/";

let server: ServerProcess;
let bucket: string;
let dbPath: string;
let grpc: FilesTestClient;
let raw: ReturnType<typeof createClient<typeof FilesService>>;
/** No keep-alive: a socket the test is done with is closed, so the server's fd count can settle. */
const agent = new http.Agent({ keepAlive: false });

beforeAll(async () => {
  bucket = await createTestBucket("faults-disconnect");
  dbPath = join(await tempDir("faults-disconnect"), "files.db");
  server = await startServer({
    config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: dbPath }, { key_prefix: KEY_PREFIX, part_size_bytes: PART }),
  });
  grpc = connectClient(server.baseUrl);
  // One HTTP/2 session for the whole file: its one socket is part of the baseline.
  raw = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
});

afterAll(async () => {
  agent.destroy();
  expect(await server?.stop()).toBe(0);
});

const openFds = () => readdirSync(`/proc/${server.child.pid}/fd`).length;
const rss = () => processMemory(server.child.pid!, "VmRSS");
const rowIds = async () => (await sql({ type: "sqlite", db_path: dbPath }, "select id from openai_files order by id")).map((r) => String(r.id));

/** Waits until S3 shows exactly `n` multipart uploads in progress. */
const multipartsAre = (n: number) => eventually(async () => expect(await listMultipartUploads(bucket)).toHaveLength(n), 15_000);

/** REST: sends CUT_UPLOAD_AT of a SIZE form, waits for S3's multipart upload, then drops the connection. */
async function cutRestUpload(): Promise<void> {
  const boundary = `----cut${randomBytes(8).toString("hex")}`;
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="cut.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const req = http.request(`${server.baseUrl}/v1/files`, {
    method: "POST",
    agent,
    headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": head.length + SIZE + 100 },
  });
  let answer: number | undefined;
  req.on("response", (res) => {
    answer = res.statusCode;
    res.resume();
  });
  req.on("error", () => {}); // our own destroy
  const write = (b: Buffer) => new Promise<void>((resolve, reject) => req.write(b, (err) => (err ? reject(err) : resolve())));
  await write(head);
  const block = randomBytes(MiB);
  for (let sent = 0; sent < CUT_UPLOAD_AT; sent += MiB) await write(block);
  await multipartsAre(1);
  expect(answer, "the server answered an upload still being sent").toBeUndefined();
  req.destroy();
  await multipartsAre(0);
}

/** gRPC: streams CUT_UPLOAD_AT, waits for S3's multipart upload, then cancels the call. */
async function cutGrpcUpload(): Promise<void> {
  const g = gate();
  const controller = new AbortController();
  const call = grpc.upload({ filename: "cut.bin", purpose: FilePurpose.USER_DATA }, gatedBytes(SIZE, CUT_UPLOAD_AT, g), controller.signal).then(
    () => undefined,
    (err: unknown) => err,
  );
  await g.reached;
  await multipartsAre(1);
  controller.abort();
  const err = await call;
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code).toBe(Code.Canceled);
  g.open(); // let the abandoned source finish
  await multipartsAre(0);
}

/** REST: reads CUT_DOWNLOAD_AT of the file's content, then drops the connection. */
async function cutRestDownload(id: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = http.get(`${server.baseUrl}/v1/files/${id}/content`, { agent }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`download answered ${res.statusCode}`));
        return;
      }
      let received = 0;
      res.on("data", (d: Buffer) => {
        received += d.length;
        if (received >= CUT_DOWNLOAD_AT) {
          req.destroy();
          resolve();
        }
      });
      res.on("end", () => reject(new Error("the whole file arrived before the cut")));
      res.on("error", () => {});
    });
    req.on("error", () => {});
  });
}

/** gRPC: reads CUT_DOWNLOAD_AT of the file's chunks, then cancels the call. */
async function cutGrpcDownload(id: string): Promise<void> {
  const controller = new AbortController();
  let received = 0;
  const err = await (async () => {
    for await (const msg of raw.downloadFile({ fileId: id }, { signal: controller.signal })) {
      if (msg.payload.case === "chunk") received += msg.payload.value.byteLength;
      if (received >= CUT_DOWNLOAD_AT) controller.abort();
    }
  })().then(
    () => new Error("the whole file arrived before the cut"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConnectError);
  expect((err as ConnectError).code).toBe(Code.Canceled);
}

it(`after ${ROUNDS * 4} transfers cut mid-way, nothing is left behind and the server's fds and memory return near baseline`, async () => {
  // Warm-up: full transfers and one cut of each kind, so that pools, JIT and buffers are in their
  // steady state before the baseline is taken.
  const data = randomBytes(SIZE);
  const restAnswer = await restUpload(server.baseUrl, (async function* () { for (let at = 0; at < SIZE; at += MiB) yield data.subarray(at, at + MiB); })(), SIZE);
  expect(restAnswer.status, restAnswer.body).toBe(200);
  const file = JSON.parse(restAnswer.body) as { id: string };
  expect(sha256((await grpc.download({ fileId: file.id })).data)).toBe(sha256(data));
  await cutRestUpload();
  await cutGrpcUpload();
  await cutRestDownload(file.id);
  await cutGrpcDownload(file.id);
  const keys = await listAllKeys(bucket);
  expect(keys).toEqual([KEY_PREFIX + file.id]);
  const fdsBefore = openFds();
  const rssBefore = rss();

  for (let round = 0; round < ROUNDS; round++) {
    await cutRestUpload();
    await cutGrpcUpload();
    await cutRestDownload(file.id);
    await cutGrpcDownload(file.id);
  }

  // Every multipart upload was aborted (checked after each cut too), no row and no object was added.
  expect(await listMultipartUploads(bucket)).toEqual([]);
  expect(await listAllKeys(bucket)).toEqual(keys);
  expect(await rowIds()).toEqual([file.id]);

  // Slack: the S3 client's keep-alive pool may hold a few more (or fewer) idle sockets than at the
  // baseline (up to the parts in flight per upload), and the log stream or timers may hold one or
  // two more. A leak of one descriptor per cut transfer would be 40 over.
  const FD_SLACK = 10;
  await eventually(async () => expect(openFds()).toBeLessThanOrEqual(fdsBefore + FD_SLACK), 15_000);
  // Slack: V8 grows its heap in steps and returns memory lazily, and allocator fragmentation keeps
  // some pages resident. A leak of what a cut upload holds (a 5 MiB part buffer at the least) would
  // be over 100 MiB after 20 of them, and a leaked download stream holds its read buffers too.
  const RSS_SLACK = 64 * MiB;
  const rssAfter = rss();
  console.log(
    `[faults-disconnect] fds ${fdsBefore} → ${openFds()}; RSS ${(rssBefore / MiB).toFixed(0)} → ${(rssAfter / MiB).toFixed(0)} MiB ` +
      `after ${ROUNDS * 4} cut transfers of a ${SIZE / MiB} MiB file`,
  );
  expect(rssAfter - rssBefore).toBeLessThan(RSS_SLACK);

  // A client going away is not a server failure: nothing was logged as one (level 50 = error).
  const errors = server.output.filter((line) => line.includes('"level":50'));
  expect(errors, errors.join("\n")).toEqual([]);

  // And it still serves, over both APIs.
  expect(server.child.exitCode).toBeNull();
  expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
  const small = randomBytes(PART + 1);
  const again = await grpc.upload({ filename: "after.bin", purpose: FilePurpose.USER_DATA }, [small]);
  const content = await fetch(`${server.baseUrl}/v1/files/${again.id}/content`);
  expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(small));
  expect(sha256((await grpc.download({ fileId: file.id })).data)).toBe(sha256(data));
});
