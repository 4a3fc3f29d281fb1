import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ExpiresAfterAnchor, FilePurpose, FileStatus, ListOrder } from "../../gen/ts/files/v1/files_pb.js";
import { connectClient, grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256, chunked, rejection, eventually } from "../support/test-helpers.js";

const PART = 5 * MiB;
let server: ServerProcess;
let bucket: string;
const clients: FilesTestClient[] = [];

beforeAll(async () => {
  bucket = await createTestBucket("grpc-roundtrip");
  const dir = await tempDir("grpc-roundtrip");
  server = await startServer({
    config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }, { part_size_bytes: PART }),
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  expect(await server?.stop()).toBe(0);
});

const makers: [string, (url: string) => FilesTestClient][] = [
  ["connect-node gRPC", (url) => connectClient(url, "grpc")],
  ["@grpc/grpc-js", (url) => grpcJsClient(url)],
];

describe.each(makers)("round trips through %s over S3", (_name, make) => {
  let client: FilesTestClient;
  beforeAll(() => {
    client = make(server.baseUrl);
    clients.push(client);
  });

  it.each([
    ["0 bytes", 0],
    ["1 byte", 1],
    ["exactly one part", PART],
    ["one part plus one byte", PART + 1],
    ["64 MiB", 64 * MiB],
  ])("%s: upload, download, get, list, delete", async (_label, size) => {
    const data = randomBytes(size);
    const file = await client.upload(
      { filename: `data-${size}.bin`, purpose: FilePurpose.ASSISTANTS, mimeType: "application/octet-stream", sizeBytes: BigInt(size), sha256: sha256(data) },
      chunked(data),
    );
    expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(file).toMatchObject({ bytes: BigInt(size), filename: `data-${size}.bin`, purpose: FilePurpose.ASSISTANTS, sha256: sha256(data), status: FileStatus.PROCESSED });
    expect(file.expiresAt).toBeUndefined();
    expect(await listAllKeys(bucket)).toContain(file.id);

    const download = await client.download({ fileId: file.id });
    expect(download.file?.id).toBe(file.id);
    expect(download.data.length).toBe(size);
    expect(sha256(download.data)).toBe(sha256(data));

    expect(await client.get(file.id)).toEqual(file);
    const listed = await client.list({ limit: 10_000 });
    expect(listed.data.map((f) => f.id)).toContain(file.id);

    expect(await client.delete(file.id)).toMatchObject({ id: file.id, deleted: true });
    expect(await listAllKeys(bucket)).not.toContain(file.id);
    expect((await rejection(client.get(file.id))).code).toBe(Code.NotFound);
  });

  it("downloads byte ranges as S3 ranged GETs", async () => {
    const data = randomBytes(PART + 12_345);
    const file = await client.upload({ filename: "r.bin", purpose: FilePurpose.BATCH }, chunked(data));
    const read = async (offset: number, length?: number) =>
      (await client.download({ fileId: file.id, offset: BigInt(offset), length: length === undefined ? undefined : BigInt(length) })).data;
    expect(await read(0, 1)).toEqual(data.subarray(0, 1));
    expect(await read(PART - 10, 20)).toEqual(data.subarray(PART - 10, PART + 10));
    expect(await read(data.length - 1)).toEqual(data.subarray(data.length - 1));
    expect(await read(100)).toEqual(data.subarray(100));
    expect(await read(data.length)).toEqual(Buffer.alloc(0));
    expect(await read(10, 0)).toEqual(Buffer.alloc(0));
    const past = await rejection(read(data.length + 1));
    expect(past.code).toBe(Code.OutOfRange);
    expect(past.message).toMatch(/offset .* past the end/);
  });

  it("answers bad input with the right code and a message naming the problem", async () => {
    const cases: [() => Promise<unknown>, Code, RegExp][] = [
      [() => client.get("file-00000000000000000000000000000000"), Code.NotFound, /No such file: 'file-0+'/],
      [() => client.get("../../etc/passwd"), Code.NotFound, /No such file/],
      [() => client.delete("file-00000000000000000000000000000000"), Code.NotFound, /No such file/],
      [() => client.download({ fileId: "file-00000000000000000000000000000000" }), Code.NotFound, /No such file/],
      [() => client.upload({ filename: "x", purpose: FilePurpose.UNSPECIFIED }, [Buffer.from("x")]), Code.InvalidArgument, /purpose is required/],
      [() => client.upload({ filename: "x", purpose: FilePurpose.BATCH_OUTPUT }, [Buffer.from("x")]), Code.InvalidArgument, /batch_output.*cannot be uploaded/],
      [() => client.upload({ filename: "x", purpose: 42 as FilePurpose }, [Buffer.from("x")]), Code.InvalidArgument, /not a known purpose/],
      [() => client.upload({ filename: "", purpose: FilePurpose.BATCH }, [Buffer.from("x")]), Code.InvalidArgument, /filename is required/],
      [
        () => client.upload({ filename: "x", purpose: FilePurpose.BATCH, expiresAfter: { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: 60n } }, []),
        Code.InvalidArgument,
        /expires_after.seconds must be .* between 3600 and 2592000/,
      ],
      [() => client.list({ limit: 0 }), Code.InvalidArgument, /limit must be .* between 1 and 10000/],
      [() => client.list({ limit: 10_001 }), Code.InvalidArgument, /limit/],
      [() => client.list({ after: "file-00000000000000000000000000000000" }), Code.InvalidArgument, /after: no such file/],
    ];
    for (const [call, code, message] of cases) {
      const err = await rejection(call());
      expect(err.code, err.message).toBe(code);
      expect(err.message).toMatch(message);
    }
  });

  it("verifies declared size and SHA-256, storing nothing on a mismatch", async () => {
    const before = await listAllKeys(bucket);
    const data = randomBytes(PART * 2 + 7);
    const wrongSha = await rejection(client.upload({ filename: "x", purpose: FilePurpose.BATCH, sha256: sha256(randomBytes(4)) }, chunked(data)));
    expect(wrongSha.code).toBe(Code.InvalidArgument);
    expect(wrongSha.message).toMatch(/SHA-256 is [0-9a-f]{64}, not the declared/);
    const short = await rejection(client.upload({ filename: "x", purpose: FilePurpose.BATCH, sizeBytes: BigInt(data.length + 1) }, chunked(data)));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.message).toMatch(/declared/);
    expect(await listAllKeys(bucket)).toEqual(before);
    expect(await listMultipartUploads(bucket)).toEqual([]);
  });
});

describe("the stream protocol", () => {
  it("refuses a chunk before the metadata, and a second metadata message", async () => {
    const client = grpcJsClient(server.baseUrl);
    clients.push(client);
    const { FilesService } = await import("../../gen/ts/files/v1/files_pb.js");
    const { createClient } = await import("@connectrpc/connect");
    const { createGrpcTransport } = await import("@connectrpc/connect-node");
    const raw = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
    async function* chunkFirst() {
      yield { payload: { case: "chunk" as const, value: Buffer.from("early") } };
    }
    const early = await rejection(raw.uploadFile(chunkFirst()));
    expect(early.code).toBe(Code.InvalidArgument);
    expect(early.message).toMatch(/first UploadFileRequest must carry metadata/);
    async function* twoMetadata() {
      yield { payload: { case: "metadata" as const, value: { filename: "a", purpose: FilePurpose.BATCH } } };
      yield { payload: { case: "chunk" as const, value: Buffer.from("x") } };
      yield { payload: { case: "metadata" as const, value: { filename: "b", purpose: FilePurpose.BATCH } } };
    }
    const twice = await rejection(raw.uploadFile(twoMetadata()));
    expect(twice.code).toBe(Code.InvalidArgument);
    expect(twice.message).toMatch(/every message must carry a chunk/);
    const empty = await rejection(raw.uploadFile((async function* () {})()));
    expect(empty.code).toBe(Code.InvalidArgument);
  });
});

describe.each(makers)("cancellation through %s", (_name, make) => {
  it("a client that cancels mid-upload leaves no row, no object and no multipart upload", async () => {
    const client = make(server.baseUrl);
    clients.push(client);
    const cancelBucketKeys = await listAllKeys(bucket);
    const controller = new AbortController();
    let sent = 0;
    async function* slowly() {
      for (;;) {
        const chunk = randomBytes(MiB);
        sent += chunk.length;
        yield chunk;
        // Cancel once more than two parts have gone out, so a multipart upload is in flight.
        if (sent >= 3 * PART) {
          await new Promise((r) => setTimeout(r, 300));
          controller.abort();
          return;
        }
      }
    }
    const err = await rejection(client.upload({ filename: "cancelled.bin", purpose: FilePurpose.BATCH }, slowly(), controller.signal));
    expect(err.code).toBe(Code.Canceled);
    await eventually(async () => {
      expect(await listMultipartUploads(bucket)).toEqual([]);
      expect(await listAllKeys(bucket)).toEqual(cancelBucketKeys);
    });
    const listed = await client.list({});
    expect(listed.data.filter((f) => f.filename === "cancelled.bin")).toEqual([]);
  });
});

describe("listing over gRPC", () => {
  it("pages exactly through files created in the same second, in both orders, with a purpose filter", async () => {
    const client = connectClient(server.baseUrl);
    const existing = (await client.list({})).data;
    for (const f of existing) await client.delete(f.id);
    const uploaded = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        client.upload({ filename: `f${i}.txt`, purpose: i % 3 === 0 ? FilePurpose.VISION : FilePurpose.USER_DATA }, [Buffer.from(`file ${i}`)]),
      ),
    );
    const sorted = [...uploaded].sort((a, b) => Number(a.createdAt - b.createdAt) || (a.id < b.id ? -1 : 1)).map((f) => f.id);
    for (const [order, expected] of [
      [ListOrder.ASC, sorted],
      [ListOrder.DESC, [...sorted].reverse()],
      [ListOrder.UNSPECIFIED, [...sorted].reverse()],
    ] as const) {
      const seen: string[] = [];
      let after = "";
      for (;;) {
        const page = await client.list({ limit: 7, order, after });
        seen.push(...page.data.map((f) => f.id));
        expect(page.firstId).toBe(page.data[0]?.id);
        expect(page.lastId).toBe(page.data.at(-1)?.id);
        if (!page.hasMore) break;
        after = page.lastId!;
      }
      expect(seen).toEqual(expected);
    }
    const vision = await client.list({ purpose: FilePurpose.VISION, limit: 4, order: ListOrder.ASC });
    expect(vision.data.every((f) => f.purpose === FilePurpose.VISION)).toBe(true);
    expect(vision.hasMore).toBe(true);
    const rest = await client.list({ purpose: FilePurpose.VISION, after: vision.lastId!, order: ListOrder.ASC });
    expect(vision.data.length + rest.data.length).toBe(10);
    expect(rest.hasMore).toBe(false);
  });
});

describe("one port for every protocol", () => {
  it.each(["connect", "grpc-web"] as const)("%s over HTTP/1.1 works on the gRPC port", async (protocol) => {
    const client = connectClient(server.baseUrl, protocol);
    const data = randomBytes(300_000);
    const file = await client.upload({ filename: `${protocol}.bin`, purpose: FilePurpose.EVALS }, chunked(data, 64 * 1024));
    expect(sha256((await client.download({ fileId: file.id, offset: 1n })).data)).toBe(sha256(data.subarray(1)));
    expect((await client.get(file.id)).sha256).toBe(sha256(data));
    await client.delete(file.id);
  });

  it("plain HTTP/1.1 requests reach the health routes", async () => {
    const res = await fetch(`${server.baseUrl}/healthz`);
    expect(res.status).toBe(200);
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect(await ready.json()).toEqual({ status: "ready" });
  });
});
