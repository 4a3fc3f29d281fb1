/**
 * Observability: Prometheus metrics at /metrics that move by exactly the traffic sent, request ids
 * echoed on every transport, and one log line per request carrying the same id.
 */
import { randomBytes } from "node:crypto";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually } from "../support/test-helpers.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
}

/** A minimal reader of the Prometheus text format (0.0.4): samples and # TYPE lines. */
function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const raw = m[3]!;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none yet). */
function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  return exposition.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

type LogEntry = Record<string, unknown>;

function logEntries(server: ServerProcess): LogEntry[] {
  return server.output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogEntry);
}

/** The one log line carrying `requestId` (waits for it: REST lines are written when the response closes). */
async function logLineFor(server: ServerProcess, requestId: string): Promise<LogEntry> {
  let found: LogEntry[] = [];
  await eventually(async () => {
    found = logEntries(server).filter((e) => e.request_id === requestId);
    expect(found).toHaveLength(1);
  });
  return found[0]!;
}

const HEX_ID = /^[0-9a-f]{32}$/;
/** Well-formed, so the lookup reaches the database, but never minted. */
const MISSING = `file-${"0".repeat(32)}`;
const uniqueId = (label: string) => `${label}-${randomBytes(6).toString("hex")}`;

let server: ServerProcess;
let bucket: string;
let grpc: Client<typeof FilesService>;
let connect: Client<typeof FilesService>;

async function scrape(): Promise<Exposition> {
  const res = await fetch(`${server.baseUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

async function* uploadMessages(filename: string, data: Buffer, chunkSize: number, gate?: Promise<void>) {
  yield { payload: { case: "metadata" as const, value: { filename, purpose: FilePurpose.USER_DATA } } };
  for (let at = 0; at < data.length; at += chunkSize) {
    yield { payload: { case: "chunk" as const, value: data.subarray(at, at + chunkSize) } };
    if (gate) await gate;
  }
}

/** A multipart body exactly as fetch would send it, so the test knows its size to the byte. */
async function multipartBody(filename: string, data: Buffer): Promise<{ body: Buffer; contentType: string }> {
  const form = new FormData();
  form.append("purpose", "user_data");
  form.append("file", new Blob([new Uint8Array(data)]), filename);
  const req = new Request("http://localhost/", { method: "POST", body: form });
  return { body: Buffer.from(await req.arrayBuffer()), contentType: req.headers.get("content-type")! };
}

async function restUpload(filename: string, data: Buffer, headers: Record<string, string> = {}) {
  const { body, contentType } = await multipartBody(filename, data);
  const res = await fetch(`${server.baseUrl}/v1/files`, { method: "POST", body, headers: { "content-type": contentType, ...headers } });
  expect(res.status).toBe(200);
  return { id: ((await res.json()) as { id: string }).id, bodyBytes: body.length, res };
}

async function grpcDownload(client: Client<typeof FilesService>, fileId: string): Promise<number> {
  let bytes = 0;
  for await (const msg of client.downloadFile({ fileId })) if (msg.payload.case === "chunk") bytes += msg.payload.value.byteLength;
  return bytes;
}

beforeAll(async () => {
  bucket = await createTestBucket("metrics");
  const dir = await tempDir("metrics");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
  grpc = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
  connect = createClient(FilesService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("/metrics", () => {
  it("serves the text format with the service's metrics and the default process metrics", async () => {
    const m = await scrape();
    expect(Object.fromEntries(["files_upload_bytes_total", "files_download_bytes_total", "files_requests_total", "files_s3_operation_errors_total", "files_reaped_total"].map((n) => [n, m.types.get(n)]))).toEqual({
      files_upload_bytes_total: "counter",
      files_download_bytes_total: "counter",
      files_requests_total: "counter",
      files_s3_operation_errors_total: "counter",
      files_reaped_total: "counter",
    });
    for (const name of ["files_upload_duration_seconds", "files_download_duration_seconds", "files_s3_operation_duration_seconds", "files_metadata_query_duration_seconds"]) {
      expect(m.types.get(name), name).toBe("histogram");
    }
    expect(m.types.get("files_uploads_in_flight")).toBe("gauge");
    expect(valueOf(m, "files_uploads_in_flight")).toBe(0);
    expect(valueOf(m, "files_reaped_total")).toBe(0);
    // The byte counters exist for every transport from the start.
    for (const transport of ["grpc", "grpc_web", "connect", "rest"]) {
      expect(m.samples.some((s) => s.name === "files_upload_bytes_total" && s.labels.transport === transport), transport).toBe(true);
    }
    // prom-client's default metrics, on the service's registry.
    expect(m.types.get("process_cpu_user_seconds_total")).toBe("counter");
    expect(valueOf(m, "nodejs_heap_size_total_bytes")).toBeGreaterThan(0);
    // Start-up already talked to S3 (the bucket check) through the instrumented client.
    expect(valueOf(m, "files_s3_operation_duration_seconds_count", { operation: "HeadBucket", outcome: "ok" })).toBeGreaterThanOrEqual(1);
  });

  it("counts uploads, downloads, requests, S3 calls and metadata queries by exactly the traffic sent", async () => {
    const N = 777_777;
    const M = 333_333;
    const K = 4_099;
    const before = await scrape();

    const grpcData = randomBytes(N);
    const { file: grpcFile } = await grpc.uploadFile(uploadMessages("grpc.bin", grpcData, 100_000));
    const rest = await restUpload("rest.bin", randomBytes(M));
    const { upload } = await connect.createUpload({ filename: "part.bin", purpose: FilePurpose.USER_DATA, bytes: BigInt(K) });
    await connect.addUploadPart({ uploadId: upload!.id, data: randomBytes(K) });

    expect(await grpcDownload(grpc, grpcFile!.id)).toBe(N);
    const content = await fetch(`${server.baseUrl}/v1/files/${rest.id}/content`);
    expect(content.status).toBe(200);
    expect((await content.arrayBuffer()).byteLength).toBe(M);

    const notFound = await grpc.getFile({ fileId: MISSING }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(notFound?.code).toBe(Code.NotFound);
    const restNotFound = await fetch(`${server.baseUrl}/v1/files/${MISSING}`);
    expect(restNotFound.status).toBe(404);
    await restNotFound.arrayBuffer();

    await eventually(async () => {
      const after = await scrape();
      const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);

      expect({
        uploadGrpc: delta("files_upload_bytes_total", { transport: "grpc" }),
        uploadRest: delta("files_upload_bytes_total", { transport: "rest" }),
        uploadConnect: delta("files_upload_bytes_total", { transport: "connect" }),
        uploadGrpcWeb: delta("files_upload_bytes_total", { transport: "grpc_web" }),
        downloadGrpc: delta("files_download_bytes_total", { transport: "grpc" }),
        downloadRest: delta("files_download_bytes_total", { transport: "rest" }),
        downloadConnect: delta("files_download_bytes_total", { transport: "connect" }),
      }).toEqual({
        uploadGrpc: N,
        // REST counts the request body as read, multipart framing included.
        uploadRest: rest.bodyBytes,
        uploadConnect: K,
        uploadGrpcWeb: 0,
        downloadGrpc: N,
        downloadRest: M,
        downloadConnect: 0,
      });

      expect({
        grpcUpload: delta("files_upload_duration_seconds_count", { transport: "grpc", outcome: "ok" }),
        restUpload: delta("files_upload_duration_seconds_count", { transport: "rest", outcome: "ok" }),
        connectPart: delta("files_upload_duration_seconds_count", { transport: "connect", outcome: "ok" }),
        uploadErrors: delta("files_upload_duration_seconds_count", { outcome: "error" }),
        grpcDownload: delta("files_download_duration_seconds_count", { transport: "grpc", outcome: "ok" }),
        restDownload: delta("files_download_duration_seconds_count", { transport: "rest", outcome: "ok" }),
        downloadErrors: delta("files_download_duration_seconds_count", { outcome: "error" }),
      }).toEqual({ grpcUpload: 1, restUpload: 1, connectPart: 1, uploadErrors: 0, grpcDownload: 1, restDownload: 1, downloadErrors: 0 });
      expect(delta("files_upload_duration_seconds_sum")).toBeGreaterThan(0);

      const requests = (route: string, method: string, status: string) => delta("files_requests_total", { route, method, status });
      expect({
        uploadFile: requests("files.v1.FilesService/UploadFile", "POST", "ok"),
        createUpload: requests("files.v1.FilesService/CreateUpload", "POST", "ok"),
        addUploadPart: requests("files.v1.FilesService/AddUploadPart", "POST", "ok"),
        downloadFile: requests("files.v1.FilesService/DownloadFile", "POST", "ok"),
        getFileNotFound: requests("files.v1.FilesService/GetFile", "POST", "not_found"),
        restCreate: requests("/v1/files", "POST", "200"),
        restContent: requests("/v1/files/{id}/content", "GET", "200"),
        restNotFound: requests("/v1/files/{id}", "GET", "404"),
        all: delta("files_requests_total"),
      }).toEqual({
        uploadFile: 1,
        createUpload: 1,
        addUploadPart: 1,
        downloadFile: 1,
        getFileNotFound: 1,
        restCreate: 1,
        restContent: 1,
        restNotFound: 1,
        all: 8,
      });

      // Two whole files and one part, each small enough for a single PutObject; two downloads.
      expect({
        putObject: delta("files_s3_operation_duration_seconds_count", { operation: "PutObject", outcome: "ok" }),
        getObject: delta("files_s3_operation_duration_seconds_count", { operation: "GetObject", outcome: "ok" }),
        s3Errors: delta("files_s3_operation_errors_total"),
      }).toEqual({ putObject: 3, getObject: 2, s3Errors: 0 });
      expect(delta("files_s3_operation_duration_seconds_sum", { operation: "PutObject" })).toBeGreaterThan(0);

      expect(delta("files_metadata_query_duration_seconds_count", { operation: "files.insert", outcome: "ok" })).toBe(2);
      expect(delta("files_metadata_query_duration_seconds_count", { operation: "uploads.insertUpload", outcome: "ok" })).toBe(1);
      expect(delta("files_metadata_query_duration_seconds_count", { operation: "uploads.insertPart", outcome: "ok" })).toBe(1);
      // Two downloads and two lookups of a missing file, at least.
      expect(delta("files_metadata_query_duration_seconds_count", { operation: "files.findById" })).toBeGreaterThanOrEqual(4);
      expect(delta("files_metadata_query_duration_seconds_count", { outcome: "error" })).toBe(0);

      expect(valueOf(after, "files_uploads_in_flight")).toBe(0);
    });
  });

  it("shows an upload in flight while it streams, and none once it has ended", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const data = randomBytes(300_000);
    const uploading = grpc.uploadFile(uploadMessages("slow.bin", data, 100_000, gate));
    await eventually(async () => expect(valueOf(await scrape(), "files_uploads_in_flight")).toBe(1));
    release();
    expect((await uploading).file!.bytes).toBe(BigInt(data.length));
    await eventually(async () => expect(valueOf(await scrape(), "files_uploads_in_flight")).toBe(0));
  });

  it("counts a failed S3 call by command and error code", async () => {
    const { file } = await grpc.uploadFile(uploadMessages("vanishing.bin", randomBytes(1000), 1000));
    const [key] = (await listAllKeys(bucket)).filter((k) => k.endsWith(file!.id));
    expect(key, "the file's object").toBeDefined();
    await testS3Client().send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    const before = await scrape();
    await expect(grpcDownload(grpc, file!.id)).rejects.toBeInstanceOf(ConnectError);
    await eventually(async () => {
      const after = await scrape();
      const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
      expect(delta("files_s3_operation_errors_total", { operation: "GetObject", code: "NoSuchKey" })).toBe(1);
      expect(delta("files_s3_operation_duration_seconds_count", { operation: "GetObject", outcome: "error" })).toBe(1);
      expect(delta("files_download_duration_seconds_count", { transport: "grpc", outcome: "error" })).toBe(1);
    });
  });
});

describe("request ids", () => {
  it("REST: echoes a sane x-request-id, and the request's log line carries it with the bytes moved", async () => {
    const id = uniqueId("rest-upload");
    const data = randomBytes(12_345);
    const { res, bodyBytes, id: fileId } = await restUpload("logged.bin", data, { "x-request-id": id });
    expect(res.headers.get("x-request-id")).toBe(id);
    expect(await logLineFor(server, id)).toMatchObject({
      msg: "http",
      method: "POST",
      route: "/v1/files",
      status: 200,
      completed: true,
      bytes_in: bodyBytes,
      principal: null,
      request_id: id,
    });

    const downloadId = uniqueId("rest-download");
    const content = await fetch(`${server.baseUrl}/v1/files/${fileId}/content`, { headers: { "x-request-id": downloadId } });
    expect(Buffer.from(await content.arrayBuffer()).equals(data)).toBe(true);
    expect(content.headers.get("x-request-id")).toBe(downloadId);
    const line = await logLineFor(server, downloadId);
    expect(line).toMatchObject({ msg: "http", method: "GET", route: "/v1/files/{id}/content", status: 200, bytes_out: data.length });
    expect(line.ms).toEqual(expect.any(Number));
  });

  it("REST: generates an id when none, or an unusable one, is sent; error answers carry it too", async () => {
    for (const sent of [undefined, "has space", "x".repeat(129), "caf\u00e9"]) {
      const res = await fetch(`${server.baseUrl}/v1/files/${MISSING}`, {
        headers: sent === undefined ? {} : { "x-request-id": sent },
      });
      expect(res.status).toBe(404);
      await res.arrayBuffer();
      const id = res.headers.get("x-request-id");
      expect(id, `sent ${JSON.stringify(sent)}`).toMatch(HEX_ID);
      expect(await logLineFor(server, id!)).toMatchObject({ msg: "http", route: "/v1/files/{id}", status: 404, principal: null });
    }
    const id = uniqueId("rest-404");
    const res = await fetch(`${server.baseUrl}/v1/files/${MISSING}`, { headers: { "x-request-id": id } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe(id);
    expect(res.headers.get("x-should-retry")).toBe("false");
  });

  it.each([
    ["gRPC", () => grpc],
    ["Connect", () => connect],
  ])("%s: echoes x-request-id in the response headers, and the rpc log line carries it", async (_name, client) => {
    const data = randomBytes(54_321);
    const uploadId = uniqueId("rpc-upload");
    let echoed: string | null = null;
    const { file } = await client().uploadFile(uploadMessages("rpc.bin", data, 20_000), {
      headers: { "x-request-id": uploadId },
      onHeader: (h) => (echoed = h.get("x-request-id")),
    });
    expect(echoed).toBe(uploadId);
    expect(await logLineFor(server, uploadId)).toMatchObject({
      msg: "rpc",
      rpc: "files.v1.FilesService/UploadFile",
      code: "ok",
      bytes_in: data.length,
      bytes_out: 0,
      principal: null,
    });

    let generated: string | null = null;
    const got = await client().getFile({ fileId: file!.id }, { onHeader: (h) => (generated = h.get("x-request-id")) });
    expect(got.file!.id).toBe(file!.id);
    expect(generated).toMatch(HEX_ID);
    expect(await logLineFor(server, generated!)).toMatchObject({ msg: "rpc", rpc: "files.v1.FilesService/GetFile", code: "ok" });

    let rejected: string | null = null;
    await client().getFile({ fileId: file!.id }, { headers: { "x-request-id": "no spaces allowed" }, onHeader: (h) => (rejected = h.get("x-request-id")) });
    expect(rejected).toMatch(HEX_ID);

    // A failed call carries it too (Connect: a response header; gRPC: in the trailers-only response).
    const failedId = uniqueId("rpc-404");
    const err = await client()
      .getFile({ fileId: MISSING }, { headers: { "x-request-id": failedId } })
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.metadata.get("x-request-id")).toBe(failedId);
    expect(await logLineFor(server, failedId)).toMatchObject({ msg: "rpc", rpc: "files.v1.FilesService/GetFile", code: "NotFound" });
  });
});
