import { createHash, randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose, FilesService, UploadStatus } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, rejection, sha256 } from "../support/test-helpers.js";

let server: ServerProcess;
let bucket: string;

beforeAll(async () => {
  bucket = await createTestBucket("grpc-uploads");
  const dir = await tempDir("grpc-uploads");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
});

afterAll(async () => {
  await server?.stop();
});

const PROTOCOLS = ["grpc", "grpc-web", "connect"] as const;

function uploadsClient(protocol: (typeof PROTOCOLS)[number]): Client<typeof FilesService> {
  const baseUrl = server.baseUrl;
  const limits = { readMaxBytes: 16 * MiB, writeMaxBytes: 16 * MiB };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, ...limits })
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", ...limits })
        : createConnectTransport({ baseUrl, httpVersion: "1.1", ...limits });
  return createClient(FilesService, transport);
}

describe.each(PROTOCOLS)("Uploads RPCs over %s", (protocol) => {
  it("assembles parts sent in parallel and out of order, small and large, in the order CompleteUpload names", async () => {
    const client = uploadsClient(protocol);
    const pieces = [randomBytes(MiB), randomBytes(6 * MiB), randomBytes(300 * 1024), randomBytes(5 * MiB + 7)];
    const whole = Buffer.concat(pieces);
    const { upload } = await client.createUpload({
      filename: `parts-${protocol}.bin`,
      purpose: FilePurpose.BATCH,
      bytes: BigInt(whole.length),
      mimeType: "application/octet-stream",
    });
    expect(upload!.status).toBe(UploadStatus.PENDING);
    expect(upload!.expiresAt - upload!.createdAt).toBe(3600n);

    // Send in reverse, all at once; remember which id holds which piece.
    const ids = new Array<string>(pieces.length);
    await Promise.all(
      pieces
        .map((data, i) => ({ data, i }))
        .reverse()
        .map(async ({ data, i }) => {
          const { part } = await client.addUploadPart({ uploadId: upload!.id, data });
          expect(part!.bytes).toBe(BigInt(data.length));
          expect(part!.sha256).toBe(sha256(data));
          ids[i] = part!.id;
        }),
    );
    const md5 = createHash("md5").update(whole).digest("hex");
    const done = await client.completeUpload({ uploadId: upload!.id, partIds: ids, md5 });
    expect(done.upload!.status).toBe(UploadStatus.COMPLETED);
    const file = done.upload!.file!;
    expect(file.bytes).toBe(BigInt(whole.length));
    expect(file.sha256).toBe(sha256(whole));

    const downloaded = await connectClient(server.baseUrl).download({ fileId: file.id });
    expect(sha256(downloaded.data)).toBe(sha256(whole));
    expect((await client.getUpload({ uploadId: upload!.id })).upload!.file!.id).toBe(file.id);
    // The parts were staging only: once assembled, none is left in the bucket.
    expect(await listAllKeys(bucket, `uploads/${upload!.id}/`)).toEqual([]);
  });

  it("answers each mistake with its own code", async () => {
    const client = uploadsClient(protocol);
    const unknown = await rejection(client.getUpload({ uploadId: "upload_00000000000000000000000000000000" }));
    expect(unknown.code).toBe(Code.NotFound);
    expect((await rejection(client.createUpload({ filename: "x", purpose: FilePurpose.BATCH, bytes: 0n }))).code).toBe(Code.InvalidArgument);

    const { upload } = await client.createUpload({ filename: "short.bin", purpose: FilePurpose.VISION, bytes: 10n });
    const { part } = await client.addUploadPart({ uploadId: upload!.id, data: randomBytes(4) });
    const short = await rejection(client.completeUpload({ uploadId: upload!.id, partIds: [part!.id] }));
    expect(short.code).toBe(Code.InvalidArgument);
    expect(short.message).toMatch(/add up to 4 bytes.*bytes=10/);

    const cancelled = await client.cancelUpload({ uploadId: upload!.id });
    expect(cancelled.upload!.status).toBe(UploadStatus.CANCELLED);
    const late = await rejection(client.addUploadPart({ uploadId: upload!.id, data: randomBytes(6) }));
    expect(late.code).toBe(Code.FailedPrecondition);
    expect(late.message).toMatch(/cancelled/);
    expect((await rejection(client.completeUpload({ uploadId: upload!.id, partIds: [part!.id] }))).code).toBe(Code.FailedPrecondition);
    expect(await listAllKeys(bucket, `uploads/${upload!.id}/`)).toEqual([]);
  });
});

it("refuses a part larger than one message with RESOURCE_EXHAUSTED, naming the limit", async () => {
  const client = uploadsClient("grpc");
  const { upload } = await client.createUpload({ filename: "big-part.bin", purpose: FilePurpose.BATCH, bytes: BigInt(9 * MiB) });
  const err = await client.addUploadPart({ uploadId: upload!.id, data: randomBytes(9 * MiB) }).then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  expect(err?.code).toBe(Code.ResourceExhausted);
  expect(err?.message).toMatch(/8388608/);
  expect(await listAllKeys(bucket, `uploads/${upload!.id}/`)).toEqual([]);
});

describe("completing an Upload without reading it back", () => {
  /** GetObject commands the server has sent so far, from its /metrics. */
  async function getObjects(): Promise<number> {
    const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
    return [...text.matchAll(/^files_s3_operation_duration_seconds_count\{([^}]*)\} (\d+)$/gm)]
      .filter((m) => m[1]!.includes('operation="GetObject"'))
      .reduce((sum, m) => sum + Number(m[2]), 0);
  }

  async function uploadInParts(pieces: Buffer[], send: (add: (data: Buffer) => Promise<string>) => Promise<string[]>) {
    const client = uploadsClient("grpc");
    const whole = Buffer.concat(pieces);
    const { upload } = await client.createUpload({ filename: "chained.bin", purpose: FilePurpose.USER_DATA, bytes: BigInt(whole.length) });
    const ids = await send(async (data) => (await client.addUploadPart({ uploadId: upload!.id, data })).part!.id);
    const before = await getObjects();
    const done = await client.completeUpload({ uploadId: upload!.id, partIds: ids });
    return { file: done.upload!.file!, whole, readBack: (await getObjects()) - before };
  }

  it("hashes parts sent in order, a few at a time, as they arrive: CompleteUpload reads nothing back and records their SHA-256", async () => {
    const pieces = [randomBytes(5 * MiB), randomBytes(5 * MiB + 3), randomBytes(5 * MiB), randomBytes(2 * MiB + 1)];
    // As the client libraries send them: in file order, two at a time.
    const { file, whole, readBack } = await uploadInParts(pieces, async (add) => {
      const ids: string[] = [];
      for (let i = 0; i < pieces.length; i += 2) ids.push(...(await Promise.all(pieces.slice(i, i + 2).map(add))));
      return ids;
    });
    expect(file.sha256).toBe(sha256(whole));
    expect(readBack, "GetObject commands during CompleteUpload").toBe(0);
    expect(sha256((await connectClient(server.baseUrl).download({ fileId: file.id })).data)).toBe(sha256(whole));
  });

  it("reads back only the parts after the first one named out of the order they arrived in, and still records the right SHA-256", async () => {
    const pieces = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(MiB)];
    const { file, whole, readBack } = await uploadInParts(pieces, async (add) => {
      // Sent one at a time in the order 0, 2, 1, 3: the prefix hashed in file order is part 0 alone.
      const ids = new Array<string>(pieces.length);
      for (const i of [0, 2, 1, 3]) ids[i] = await add(pieces[i]!);
      return ids;
    });
    expect(file.sha256).toBe(sha256(whole));
    expect(readBack, "GetObject commands during CompleteUpload: parts 1, 2 and 3").toBe(3);
  });
});
