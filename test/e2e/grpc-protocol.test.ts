/**
 * The server's gRPC wire behaviour, checked byte by byte against the gRPC over HTTP/2 spec
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md) with a raw node:http2 client
 * (test/support/raw-grpc.ts): hand-built length-prefixed messages, and the response as it arrived
 * (first HEADERS and its END_STREAM flag, each message's compressed flag, trailers, RST_STREAM).
 * @grpc/grpc-js is the second opinion where what a real client makes of an answer is the point.
 *
 * These describe the protocol, not any one server implementation: they must hold for the
 * connect-es handler and for a hand-written gRPC path alike. Where the spec leaves a choice, or
 * where today's server departs from it, the test pins what the server does today and says so
 * ("today's behaviour; spec says ...") so that a change is a visible, deliberate one.
 *
 * Two servers, both the embedded default (local storage + SQLite): one with the default limits,
 * one with max_message_bytes at its 64 KiB minimum for the message-size tests.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { join } from "node:path";
import zlib from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AddUploadPartRequestSchema,
  AddUploadPartResponseSchema,
  CompleteUploadRequestSchema,
  CompleteUploadResponseSchema,
  CreateUploadRequestSchema,
  CreateUploadResponseSchema,
  DownloadFileRequestSchema,
  DownloadFileResponseSchema,
  FilePurpose,
  GetFileRequestSchema,
  GetFileResponseSchema,
  ListFilesRequestSchema,
  ListFilesResponseSchema,
  UploadFileRequestSchema,
  UploadFileResponseSchema,
  type File,
} from "../../gen/ts/files/v1/files_pb.js";
import { tempDir } from "../support/env.js";
import {
  closeSession,
  connectSession,
  decodeGrpcMessage,
  decodeRpcStatus,
  envelope,
  grpcStatus,
  rawCall,
  rawGrpcMessage,
  startCall,
  statusHeaders,
  RawH2Connection,
  splitEnvelopes,
  type RawGrpcResult,
} from "../support/raw-grpc.js";
import { startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

const FILES = "/files.v1.FilesService";
const SMALL_LIMIT = 64 * 1024; // server.limits.max_message_bytes's minimum
const UNKNOWN_ID = `file-${"0123456789abcdef".repeat(2)}`; // well formed, never minted here

const Status = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;

// ---------------------------------------------------------------------------
// Messages, by hand where the test needs bytes no generated client would send
// ---------------------------------------------------------------------------

const getFileRequest = (fileId: string) => Buffer.from(toBinary(GetFileRequestSchema, create(GetFileRequestSchema, { fileId })));
const downloadRequest = (fileId: string) => Buffer.from(toBinary(DownloadFileRequestSchema, create(DownloadFileRequestSchema, { fileId })));
const listRequest = () => Buffer.from(toBinary(ListFilesRequestSchema, create(ListFilesRequestSchema, { limit: 10_000 })));
const metadataMessage = (filename: string) =>
  Buffer.from(
    toBinary(
      UploadFileRequestSchema,
      create(UploadFileRequestSchema, { payload: { case: "metadata", value: { filename, purpose: FilePurpose.BATCH } } }),
    ),
  );
const chunkMessage = (bytes: Uint8Array) =>
  Buffer.from(toBinary(UploadFileRequestSchema, create(UploadFileRequestSchema, { payload: { case: "chunk", value: bytes } })));

/** `data` as chunk messages of at most `size` bytes, each in its own envelope. */
const chunkEnvelopes = (data: Buffer, size: number) => {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) out.push(envelope(chunkMessage(data.subarray(at, at + size))));
  return out;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Checks every answer gets
// ---------------------------------------------------------------------------

/**
 * What the spec requires of any response: HTTP status 200 (gRPC errors travel in grpc-status, not
 * the HTTP status), a gRPC content-type, and a grpc-status either in the trailers or, for
 * Trailers-Only, in the one HEADERS frame. When grpc-status-details-bin is present it must be a
 * base64 google.rpc.Status agreeing with grpc-status and grpc-message.
 */
function expectGrpcAnswer(r: RawGrpcResult, status: number, context: string): void {
  expect(r.headers?.[":status"], context).toBe(200);
  expect(String(r.headers?.["content-type"]), context).toMatch(/^application\/grpc/);
  expect(grpcStatus(r), `${context}: ${JSON.stringify(statusHeaders(r))}`).toBe(status);
  if (r.trailersOnly) expect(r.trailers, context).toBeUndefined();
  else expect(r.headers?.["grpc-status"], `${context}: grpc-status belongs in the trailers`).toBeUndefined();
  expect(r.leftover.length, `${context}: a partial message`).toBe(0);
  expectConsistentStatusDetails(r, context);
}

/** grpc-status-details-bin, when present: base64 (padding optional) of a Status matching grpc-status and grpc-message. */
function expectConsistentStatusDetails(r: RawGrpcResult, context: string): void {
  const value = statusHeaders(r)?.["grpc-status-details-bin"];
  if (value === undefined) return;
  expect(typeof value, context).toBe("string");
  expect(value as string, `${context}: grpc-status-details-bin is not base64`).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
  const status = decodeRpcStatus(Buffer.from(value as string, "base64"));
  expect(status.code, context).toBe(grpcStatus(r));
  expect(status.message, context).toBe(decodeGrpcMessage(rawGrpcMessage(r) ?? ""));
}

/** The spec's encoding of grpc-message: printable ASCII (0x20-0x7E) but '%' as is, everything else as %XX of its UTF-8 bytes. */
function expectSpecEncoded(raw: string, context: string): void {
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    expect(code >= 0x20 && code <= 0x7e, `${context}: byte 0x${code.toString(16)} at ${i} of ${raw}`).toBe(true);
    if (raw[i] === "%") expect(raw.slice(i + 1, i + 3), `${context}: '%' at ${i} of ${raw}`).toMatch(/^[0-9A-F]{2}$/);
  }
}

// ---------------------------------------------------------------------------
// Servers and the calls every test makes
// ---------------------------------------------------------------------------

let server: ServerProcess;
let small: ServerProcess;
let serverCwd: string;
let session: http2.ClientHttp2Session;
let smallSession: http2.ClientHttp2Session;
const sessions: http2.ClientHttp2Session[] = [];
let bigFile: File; // 4 MiB, on `server`
let bigData: Buffer;

/** A session closed by afterAll. */
async function newSession(baseUrl: string, settings?: http2.Settings): Promise<http2.ClientHttp2Session> {
  const s = await connectSession(baseUrl, settings);
  sessions.push(s);
  return s;
}

/** A whole raw UploadFile; resolves with the answer and the File it created, if any. */
async function rawUpload(s: http2.ClientHttp2Session, body: Buffer[]): Promise<{ r: RawGrpcResult; file: File | undefined }> {
  const r = await rawCall(s, `${FILES}/UploadFile`, { body });
  const file = grpcStatus(r) === Status.OK ? fromBinary(UploadFileResponseSchema, r.messages[0]!.data).file : undefined;
  return { r, file };
}

async function listFiles(s: http2.ClientHttp2Session): Promise<File[]> {
  const r = await rawCall(s, `${FILES}/ListFiles`, { body: envelope(listRequest()) });
  expectGrpcAnswer(r, Status.OK, "ListFiles");
  return fromBinary(ListFilesResponseSchema, r.messages[0]!.data).data;
}

async function filenames(s: http2.ClientHttp2Session): Promise<string[]> {
  return (await listFiles(s)).map((f) => f.filename);
}

/** Every message of a whole DownloadFile, decoded; fails unless it ends OK. */
async function download(s: http2.ClientHttp2Session, fileId: string): Promise<Buffer> {
  const r = await rawCall(s, `${FILES}/DownloadFile`, { body: envelope(downloadRequest(fileId)) });
  expectGrpcAnswer(r, Status.OK, "DownloadFile");
  const [first, ...rest] = r.messages.map((m) => fromBinary(DownloadFileResponseSchema, m.data));
  expect(first?.payload.case).toBe("file");
  return Buffer.concat(rest.map((m) => (m.payload.case === "chunk" ? m.payload.value : new Uint8Array())));
}

/** A gRPC call's request headers, for RawH2Connection. */
const requestHeaders = (port: number, path: string) => ({
  ":method": "POST",
  ":scheme": "http",
  ":path": path,
  ":authority": `127.0.0.1:${port}`,
  "content-type": "application/grpc",
  te: "trailers",
});

/** The names in the store's directory, leaving out its temp directory. */
async function storedObjects(): Promise<string[]> {
  return (await readdir(join(serverCwd, "data", "files"))).filter((name) => !name.startsWith("."));
}

/** A unary call through @grpc/grpc-js on a path of the test's choosing; resolves with the status it saw. */
function grpcJsUnary(target: string, path: string, request: Buffer): Promise<{ code: number; details: string; response?: Buffer }> {
  const client = new grpc.Client(target.replace(/^http:\/\//, ""), grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      path,
      (b) => b,
      (b) => b,
      request,
      { deadline: Date.now() + 15_000 },
      (err, response) => {
        client.close();
        resolve(err ? { code: err.code, details: err.details } : { code: Status.OK, details: "", response });
      },
    );
  });
}

beforeAll(async () => {
  serverCwd = await tempDir("grpc-protocol");
  const smallCwd = await tempDir("grpc-protocol-small");
  [server, small] = await Promise.all([
    startServer({ cwd: serverCwd }),
    startServer({ cwd: smallCwd, config: { server: { limits: { max_message_bytes: SMALL_LIMIT } } } }),
  ]);
  session = await newSession(server.baseUrl);
  smallSession = await newSession(small.baseUrl);
  bigData = randomBytes(4 * MiB);
  const { r, file } = await rawUpload(session, [envelope(metadataMessage("big.bin")), ...chunkEnvelopes(bigData, 256 * 1024)]);
  expectGrpcAnswer(r, Status.OK, "the 4 MiB upload");
  bigFile = file!;
  expect(bigFile.sha256).toBe(sha256(bigData));
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => closeSession(s)));
  // Every call the tests abandoned must have been let go: a held stream would stall a graceful stop.
  const started = Date.now();
  const codes = await Promise.all([server?.stop(), small?.stop()]);
  expect(codes).toEqual([0, 0]);
  expect(Date.now() - started).toBeLessThan(10_000);
});

// ---------------------------------------------------------------------------
// 1. Unknown methods and services
// ---------------------------------------------------------------------------

describe("unknown methods and services", () => {
  it("an unknown method on FilesService is UNIMPLEMENTED", async () => {
    const path = `${FILES}/NoSuchMethod`;
    const r = await rawCall(session, path, { body: envelope(Buffer.alloc(0)) });
    // Spec: grpc-status 12 UNIMPLEMENTED with HTTP status 200; Trailers-Only, as it is an immediate error.
    expectGrpcAnswer(r, Status.UNIMPLEMENTED, path);
    expect(r.trailersOnly).toBe(true);
    expect(r.dataBytes).toBe(0);
    const seen = await grpcJsUnary(server.baseUrl, path, Buffer.alloc(0));
    expect(seen.code, seen.details).toBe(Status.UNIMPLEMENTED);
  });

  it("an unknown service is UNIMPLEMENTED to a gRPC client", async () => {
    const path = "/no.such.v1.Service/Method";
    const r = await rawCall(session, path, { body: envelope(Buffer.alloc(0)) });
    // Today's behaviour; spec says grpc-status 12 UNIMPLEMENTED with HTTP status 200. Today the
    // call falls through to the REST router: HTTP 404, a JSON body, no grpc-status at all.
    expect(r.headers?.[":status"]).toBe(404);
    expect(r.headers?.["content-type"]).toBe("application/json");
    expect(r.headers?.["grpc-status"]).toBeUndefined();
    expect(r.trailers?.["grpc-status"]).toBeUndefined();
    expect(r.trailersOnly).toBe(false);
    expect(JSON.parse(r.leftover.toString("utf8"))).toMatchObject({ error: { type: "invalid_request_error" } });
    // What a real client makes of it is UNIMPLEMENTED either way: the spec's HTTP-to-gRPC mapping
    // (doc/http-grpc-status-mapping.md) turns a 404 without grpc-status into UNIMPLEMENTED.
    const seen = await grpcJsUnary(server.baseUrl, path, Buffer.alloc(0));
    expect(seen.code, seen.details).toBe(Status.UNIMPLEMENTED);
  });
});

// ---------------------------------------------------------------------------
// 2-4. Error responses: their shape, grpc-message and grpc-status-details-bin
// ---------------------------------------------------------------------------

describe("error responses", () => {
  it("an immediate error (GetFile of an unknown id) carries :status 200, a gRPC content-type, grpc-status 5 and grpc-message, and no messages", async () => {
    const r = await rawCall(session, `${FILES}/GetFile`, { body: envelope(getFileRequest(UNKNOWN_ID)) });
    expectGrpcAnswer(r, Status.NOT_FOUND, "GetFile");
    expect(r.dataBytes).toBe(0);
    expect(r.messages).toEqual([]);
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toBe(`No such file: '${UNKNOWN_ID}'`);
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // Spec: "Trailers-Only is permitted for calls that produce an immediate error": one HEADERS
    // frame with END_STREAM carrying :status, content-type, grpc-status and grpc-message.
    expect(r.trailersOnly).toBe(true);
    expect(r.headers?.["grpc-status"]).toBe("5");
    expect(r.headers?.["content-type"]).toBe("application/grpc+proto");
    expect(r.trailers).toBeUndefined();
    const seen = await grpcJsUnary(server.baseUrl, `${FILES}/GetFile`, getFileRequest(UNKNOWN_ID));
    expect(seen).toMatchObject({ code: Status.NOT_FOUND, details: `No such file: '${UNKNOWN_ID}'` });
  });

  it("grpc-message is percent-encoded the spec's way: printable ASCII as is, '%' and other bytes as %XX of UTF-8", async () => {
    const id = "../etc:passwd,%é"; // not a file id: the server answers NOT_FOUND quoting it
    const r = await rawCall(session, `${FILES}/GetFile`, { body: envelope(getFileRequest(id)) });
    expectGrpcAnswer(r, Status.NOT_FOUND, "GetFile");
    const raw = rawGrpcMessage(r)!;
    expectSpecEncoded(raw, "grpc-message");
    // ':' and ',' as is (not %3A, %2C as encodeURIComponent would have them), '%' as %25, 'é' as its two UTF-8 bytes.
    expect(raw).toBe("No such file: '../etc:passwd,%25%C3%A9'");
    expect(decodeGrpcMessage(raw)).toBe(`No such file: '${id}'`);
    // And a real client reads the message back unchanged.
    const seen = await grpcJsUnary(server.baseUrl, `${FILES}/GetFile`, getFileRequest(id));
    expect(seen).toEqual({ code: Status.NOT_FOUND, details: `No such file: '${id}'` });
  });

  it("grpc-status-details-bin, whenever sent, is a base64 google.rpc.Status agreeing with grpc-status and grpc-message", async () => {
    const answers: [string, RawGrpcResult][] = [
      ["NOT_FOUND", await rawCall(session, `${FILES}/GetFile`, { body: envelope(getFileRequest(UNKNOWN_ID)) })],
      ["INVALID_ARGUMENT", (await rawUpload(session, [envelope(chunkMessage(Buffer.from("no metadata first")))])).r],
      ["RESOURCE_EXHAUSTED", await rawCall(smallSession, `${FILES}/GetFile`, { body: envelope(Buffer.alloc(SMALL_LIMIT + 1)) })],
      ["INTERNAL", await rawCall(session, `${FILES}/GetFile`, { body: envelope(Buffer.from([0xff, 0xff, 0xff])) })],
    ];
    const codes = [Status.NOT_FOUND, Status.INVALID_ARGUMENT, Status.RESOURCE_EXHAUSTED, Status.INTERNAL];
    // Today's behaviour: none of these carries grpc-status-details-bin (the server's errors have no
    // details, and the spec makes the header optional), so the consistency check has nothing to
    // check yet; it applies as soon as the server sends one.
    answers.forEach(([what, r], i) => expectGrpcAnswer(r, codes[i]!, what));
  });
});

// ---------------------------------------------------------------------------
// 5. Compression
// ---------------------------------------------------------------------------

describe("compression", () => {
  it("a gzip-compressed request message (flag 1, grpc-encoding: gzip) is decompressed and parsed", async () => {
    const r = await rawCall(session, `${FILES}/GetFile`, {
      headers: { "grpc-encoding": "gzip" },
      body: envelope(zlib.gzipSync(getFileRequest(UNKNOWN_ID)), { compressed: true }),
    });
    // NOT_FOUND quoting the id: the message was decompressed and decoded.
    expectGrpcAnswer(r, Status.NOT_FOUND, "gzip GetFile");
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toBe(`No such file: '${UNKNOWN_ID}'`);
    // And a compressed upload stores the uncompressed bytes.
    const data = randomBytes(100_000);
    const up = await rawCall(session, `${FILES}/UploadFile`, {
      headers: { "grpc-encoding": "gzip" },
      body: [envelope(zlib.gzipSync(metadataMessage("gzip.bin")), { compressed: true }), envelope(zlib.gzipSync(chunkMessage(data)), { compressed: true })],
    });
    expectGrpcAnswer(up, Status.OK, "gzip UploadFile");
    expect(fromBinary(UploadFileResponseSchema, up.messages[0]!.data).file?.sha256).toBe(sha256(data));
  });

  it("a message compressed with an unsupported grpc-encoding is UNIMPLEMENTED", async () => {
    const r = await rawCall(session, `${FILES}/GetFile`, {
      headers: { "grpc-encoding": "snappy" },
      body: envelope(zlib.gzipSync(getFileRequest(UNKNOWN_ID)), { compressed: true }),
    });
    expectGrpcAnswer(r, Status.UNIMPLEMENTED, "snappy GetFile");
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toMatch(/snappy/);
    // Spec (compression.md): the server "will then include a grpc-accept-encoding response header"
    // listing what it accepts.
    const accept = r.headers?.["grpc-accept-encoding"] ?? statusHeaders(r)?.["grpc-accept-encoding"];
    expect(String(accept).split(/\s*,\s*/)).toContain("gzip");
  });

  it("a compressed flag with no grpc-encoding, or with identity, is INTERNAL", async () => {
    for (const headers of [{}, { "grpc-encoding": "identity" }]) {
      const r = await rawCall(session, `${FILES}/GetFile`, { headers, body: envelope(zlib.gzipSync(getFileRequest(UNKNOWN_ID)), { compressed: true }) });
      // Spec: "A Compressed-Flag value of 1 indicates that the binary octet sequence of Message is
      // compressed using the mechanism declared by the Message-Encoding header"; with none
      // declared it is a protocol error, INTERNAL.
      expectGrpcAnswer(r, Status.INTERNAL, `compressed flag with ${JSON.stringify(headers)}`);
    }
  });

  it("responses are never compressed, even to a client that accepts gzip", async () => {
    const data = randomBytes(300_000); // compressible or not, the server does not compress
    const { file } = await rawUpload(session, [envelope(metadataMessage("small.bin")), envelope(chunkMessage(data))]);
    const r = await rawCall(session, `${FILES}/DownloadFile`, { headers: { "grpc-accept-encoding": "gzip" }, body: envelope(downloadRequest(file!.id)) });
    expectGrpcAnswer(r, Status.OK, "DownloadFile");
    expect(r.messages.length).toBeGreaterThan(1);
    expect(r.messages.map((m) => m.flag)).toEqual(r.messages.map(() => 0));
    const chunks = r.messages.slice(1).map((m) => fromBinary(DownloadFileResponseSchema, m.data).payload.value as Uint8Array);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(data));
    // Today the response headers still say grpc-encoding: gzip; that is allowed (a message with
    // Compressed-Flag 0 is uncompressed whatever grpc-encoding says), and so is leaving it out.
    const encoding = r.headers?.["grpc-encoding"];
    if (encoding !== undefined) expect(["gzip", "identity"]).toContain(encoding);
  });
});

// ---------------------------------------------------------------------------
// 6. Deadlines (grpc-timeout)
// ---------------------------------------------------------------------------

describe("deadlines", () => {
  it("a download whose client stops reading ends with DEADLINE_EXCEEDED once grpc-timeout passes", async () => {
    // A 64 KiB stream window: the server can get little ahead of a client that does not read.
    const slow = await newSession(server.baseUrl, { initialWindowSize: 65_535 });
    const call = startCall(slow, `${FILES}/DownloadFile`, { headers: { "grpc-timeout": "300m" }, body: envelope(downloadRequest(bigFile.id)) });
    call.stream.pause();
    await call.response;
    await sleep(500); // past the deadline, without reading a byte, but within the server's 1 s grace for trailers
    const resumed = Date.now();
    call.stream.resume();
    const r = await call.result;
    // The server stops at the deadline and ends the call with DEADLINE_EXCEEDED trailers, queued
    // behind what it had already written (so seen once the client reads again).
    expectGrpcAnswer(r, Status.DEADLINE_EXCEEDED, "stalled DownloadFile");
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(Date.now() - resumed).toBeLessThan(2_000);
    // It stopped producing: of the 4 MiB file, at most its write-ahead (1 MiB) and one 256 KiB
    // message beyond the stream window went out.
    expect(r.dataBytes).toBeLessThan(1.5 * MiB);
    expect(r.messages.length).toBeGreaterThanOrEqual(1);
  });

  it("a download whose client never reads again is reset (RST_STREAM CANCEL) soon after its deadline, freeing the stream", async () => {
    const slow = await newSession(server.baseUrl, { initialWindowSize: 65_535 });
    const started = Date.now();
    const call = startCall(slow, `${FILES}/DownloadFile`, { headers: { "grpc-timeout": "300m" }, body: envelope(downloadRequest(bigFile.id)) });
    call.stream.pause();
    const r = await call.result;
    // The trailers cannot get past the unread data, so the server gives up on them after a grace period.
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The session itself is fine.
    expectGrpcAnswer(await rawCall(slow, `${FILES}/GetFile`, { body: envelope(getFileRequest(bigFile.id)) }), Status.OK, "GetFile after the reset");
  });

  it("an upload that stalls after its metadata ends with DEADLINE_EXCEEDED and creates no file", async () => {
    const call = startCall(session, `${FILES}/UploadFile`, {
      headers: { "grpc-timeout": "200m" },
      body: [envelope(metadataMessage("stalled.bin")), envelope(chunkMessage(randomBytes(1_000)))],
      end: false,
    });
    const r = await call.result;
    expectGrpcAnswer(r, Status.DEADLINE_EXCEEDED, "stalled UploadFile");
    expect(r.ms).toBeGreaterThanOrEqual(150);
    expect(r.ms).toBeLessThan(3_000);
    expect(await filenames(session)).not.toContain("stalled.bin");
  });

  it("a malformed grpc-timeout is INVALID_ARGUMENT", async () => {
    // Spec: TimeoutValue is 1 to 8 ASCII digits, TimeoutUnit one of H M S m u n.
    for (const timeout of ["abc", "1x", "123456789S", "-1S"]) {
      const r = await rawCall(session, `${FILES}/GetFile`, { headers: { "grpc-timeout": timeout }, body: envelope(getFileRequest(UNKNOWN_ID)) });
      // Today's behaviour (the spec does not say what a server does with a malformed value).
      expectGrpcAnswer(r, Status.INVALID_ARGUMENT, `grpc-timeout: ${timeout}`);
      expect(decodeGrpcMessage(rawGrpcMessage(r)!), timeout).toMatch(/timeout/i);
    }
    // A well-formed one, even an 8-digit one, is fine.
    const r = await rawCall(session, `${FILES}/GetFile`, { headers: { "grpc-timeout": "99999999m" }, body: envelope(getFileRequest(UNKNOWN_ID)) });
    expectGrpcAnswer(r, Status.NOT_FOUND, "grpc-timeout: 99999999m");
  });

  it("a call refused before it reaches the handlers (bad grpc-timeout, unknown encoding, unreadable request) still echoes its x-request-id", async () => {
    const refused = [
      { headers: { "grpc-timeout": "abc" }, body: envelope(getFileRequest(UNKNOWN_ID)), code: Status.INVALID_ARGUMENT },
      { headers: { "grpc-encoding": "snappy" }, body: envelope(zlib.gzipSync(getFileRequest(UNKNOWN_ID)), { compressed: true }), code: Status.UNIMPLEMENTED },
      { headers: {}, body: envelope(Buffer.from([0xff, 0xff, 0xff])), code: Status.INTERNAL },
    ];
    for (const [i, { headers, body, code }] of refused.entries()) {
      const id = `early-error-${i}`;
      const r = await rawCall(session, `${FILES}/GetFile`, { headers: { ...headers, "x-request-id": id }, body });
      expectGrpcAnswer(r, code, `refused call ${i}`);
      expect(statusHeaders(r)?.["x-request-id"], `refused call ${i}`).toBe(id);
    }
    // Without one (or with one that is not sane), the answer carries a fresh id.
    const r = await rawCall(session, `${FILES}/GetFile`, { headers: { "grpc-timeout": "abc" }, body: envelope(getFileRequest(UNKNOWN_ID)) });
    expect(statusHeaders(r)?.["x-request-id"]).toMatch(/^[0-9a-f]{32}$/);
  });
});

// ---------------------------------------------------------------------------
// 7. Message-size limits (the 64 KiB server)
// ---------------------------------------------------------------------------

describe("max_message_bytes", () => {
  it("an UploadFile chunk message over the limit is RESOURCE_EXHAUSTED, naming the limit, and creates no file", async () => {
    const { r } = await rawUpload(smallSession, [envelope(metadataMessage("too-big-chunk.bin")), envelope(chunkMessage(randomBytes(SMALL_LIMIT + 1_000)))]);
    expectGrpcAnswer(r, Status.RESOURCE_EXHAUSTED, "UploadFile");
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toMatch(new RegExp(`\\b${SMALL_LIMIT}\\b`));
    expect(await filenames(smallSession)).not.toContain("too-big-chunk.bin");
    // Chunks within the limit are fine.
    const data = randomBytes(3 * SMALL_LIMIT);
    const ok = await rawUpload(smallSession, [envelope(metadataMessage("within.bin")), ...chunkEnvelopes(data, SMALL_LIMIT - 100)]);
    expectGrpcAnswer(ok.r, Status.OK, "UploadFile within the limit");
    expect(ok.file?.sha256).toBe(sha256(data));
  });

  it("an AddUploadPart over the limit is RESOURCE_EXHAUSTED", async () => {
    const created = await rawCall(smallSession, `${FILES}/CreateUpload`, {
      body: envelope(
        Buffer.from(
          toBinary(
            CreateUploadRequestSchema,
            create(CreateUploadRequestSchema, { filename: "parts.bin", purpose: FilePurpose.BATCH, bytes: BigInt(2 * SMALL_LIMIT), mimeType: "application/octet-stream" }),
          ),
        ),
      ),
    });
    expectGrpcAnswer(created, Status.OK, "CreateUpload");
    const upload = fromBinary(CreateUploadResponseSchema, created.messages[0]!.data).upload!;
    const part = (n: number) =>
      envelope(Buffer.from(toBinary(AddUploadPartRequestSchema, create(AddUploadPartRequestSchema, { uploadId: upload.id, data: randomBytes(n) }))));
    const r = await rawCall(smallSession, `${FILES}/AddUploadPart`, { body: part(SMALL_LIMIT + 1_000) });
    expectGrpcAnswer(r, Status.RESOURCE_EXHAUSTED, "AddUploadPart");
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toMatch(new RegExp(`\\b${SMALL_LIMIT}\\b`));
    expectGrpcAnswer(await rawCall(smallSession, `${FILES}/AddUploadPart`, { body: part(SMALL_LIMIT - 1_000) }), Status.OK, "AddUploadPart within the limit");
  });

  it("no DownloadFile message is over the limit", async () => {
    const data = randomBytes(MiB);
    const { file } = await rawUpload(smallSession, [envelope(metadataMessage("download-me.bin")), ...chunkEnvelopes(data, 32 * 1024)]);
    const r = await rawCall(smallSession, `${FILES}/DownloadFile`, { body: envelope(downloadRequest(file!.id)) });
    expectGrpcAnswer(r, Status.OK, "DownloadFile");
    for (const m of r.messages) expect(m.data.length).toBeLessThanOrEqual(SMALL_LIMIT);
    const [first, ...rest] = r.messages.map((m) => fromBinary(DownloadFileResponseSchema, m.data));
    expect(first?.payload.case).toBe("file");
    expect(sha256(Buffer.concat(rest.map((m) => m.payload.value as Uint8Array)))).toBe(sha256(data));
  });

  it("a declared message length over the limit is RESOURCE_EXHAUSTED at once, before its bytes arrive", async () => {
    const call = startCall(smallSession, `${FILES}/GetFile`, { body: envelope(Buffer.from([0x0a, 0x01, 0x41]), { declaredLength: 16 * MiB }), end: false, timeoutMs: 5_000 });
    const r = await call.result;
    expectGrpcAnswer(r, Status.RESOURCE_EXHAUSTED, "GetFile with a 16 MiB length prefix");
    expect(r.ms).toBeLessThan(2_000);
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toMatch(new RegExp(`\\b${SMALL_LIMIT}\\b`));
    // The session is still fine.
    expect(Array.isArray(await listFiles(smallSession))).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// 8. Cancellation (RST_STREAM from the client)
// ---------------------------------------------------------------------------

describe("cancellation", () => {
  it("an upload cancelled mid-stream (RST_STREAM CANCEL, no END_STREAM) leaves no file and a healthy server", async () => {
    // Hand-made frames: node:http2's stream.close(NGHTTP2_CANCEL) would send END_STREAM before
    // the RST_STREAM once its writes are flushed, and the server would rightly see a whole request.
    const before = await storedObjects();
    const conn = await RawH2Connection.connect(server.port);
    try {
      const id = conn.openStream({ ...requestHeaders(server.port, `${FILES}/UploadFile`), "x-request-id": "grpc-protocol-cancelled-upload" });
      await conn.sendData(id, Buffer.concat([envelope(metadataMessage("cancelled.bin")), ...chunkEnvelopes(randomBytes(2 * MiB), 256 * 1024)]));
      await sleep(200); // the server reads and stores what it got
      conn.reset(id, http2.constants.NGHTTP2_CANCEL);
      // The server sees a cancelled call (its request log says so)...
      await eventually(async () => {
        const line = server.output.find((l) => l.includes('"grpc-protocol-cancelled-upload"'));
        expect(line, "the server's log line for the cancelled call").toBeDefined();
        expect(JSON.parse(line!)).toMatchObject({ rpc: "files.v1.FilesService/UploadFile", code: "Canceled" });
      });
      expect(conn.streams.get(id)?.endStream).toBe(false); // and answered nothing that ends the stream
    } finally {
      conn.close();
    }
    // ...and keeps nothing of it.
    await eventually(async () => {
      expect(await filenames(session)).not.toContain("cancelled.bin");
      expect(await storedObjects()).toEqual(before);
    });
    // An existing session and a new one both still work.
    const got = await rawCall(session, `${FILES}/GetFile`, { body: envelope(getFileRequest(bigFile.id)) });
    expectGrpcAnswer(got, Status.OK, "GetFile after the cancel");
    expect(fromBinary(GetFileResponseSchema, got.messages[0]!.data).file?.id).toBe(bigFile.id);
    const fresh = await newSession(server.baseUrl);
    expect((await listFiles(fresh)).map((f) => f.id)).toContain(bigFile.id);
  });

  it("a download cancelled after its first DATA leaves the server and the session usable", async () => {
    const call = startCall(session, `${FILES}/DownloadFile`, { body: envelope(downloadRequest(bigFile.id)) });
    await call.firstData;
    call.stream.close(http2.constants.NGHTTP2_CANCEL);
    const r = await call.result;
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(r.dataBytes).toBeLessThan(bigData.length);
    // The same session downloads the whole file next, and so does a new one.
    expect(sha256(await download(session, bigFile.id))).toBe(bigFile.sha256);
    expect(sha256(await download(await newSession(server.baseUrl), bigFile.id))).toBe(bigFile.sha256);
  });
});

// ---------------------------------------------------------------------------
// 9-10. Content types, HTTP/1.1, and the headers of a success
// ---------------------------------------------------------------------------

describe("content types and response headers", () => {
  it("application/grpc and application/grpc+proto are both served", async () => {
    for (const contentType of ["application/grpc", "application/grpc+proto"]) {
      const r = await rawCall(session, `${FILES}/GetFile`, { headers: { "content-type": contentType }, body: envelope(getFileRequest(bigFile.id)) });
      expectGrpcAnswer(r, Status.OK, contentType);
      expect(fromBinary(GetFileResponseSchema, r.messages[0]!.data).file?.sha256).toBe(bigFile.sha256);
      // Today's behaviour: the answer is labelled application/grpc+proto either way (the spec allows either).
      expect(r.headers?.["content-type"]).toBe("application/grpc+proto");
    }
  });

  it("application/grpc+json is served too, with JSON messages", async () => {
    // Today's behaviour: JSON over gRPC works (the spec leaves the sub-type to the implementation).
    const ok = await rawCall(session, `${FILES}/GetFile`, {
      headers: { "content-type": "application/grpc+json" },
      body: envelope(Buffer.from(JSON.stringify({ fileId: bigFile.id }))),
    });
    expectGrpcAnswer(ok, Status.OK, "grpc+json GetFile");
    expect(ok.headers?.["content-type"]).toBe("application/grpc+json");
    expect(JSON.parse(ok.messages[0]!.data.toString("utf8"))).toMatchObject({ file: { id: bigFile.id, sha256: bigFile.sha256 } });
    const missing = await rawCall(session, `${FILES}/GetFile`, {
      headers: { "content-type": "application/grpc+json" },
      body: envelope(Buffer.from(JSON.stringify({ fileId: UNKNOWN_ID }))),
    });
    expectGrpcAnswer(missing, Status.NOT_FOUND, "grpc+json GetFile of an unknown id");
  });

  it("a gRPC POST over HTTP/1.1 is served as gRPC, with HTTP/1.1 trailers", async () => {
    const answer = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; trailers: NodeJS.Dict<string>; body: Buffer }>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: server.port, method: "POST", path: `${FILES}/GetFile`, headers: { "content-type": "application/grpc", te: "trailers" }, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.setTimeout(15_000, () => req.destroy(new Error("no answer over HTTP/1.1 within 15 s")));
      req.end(envelope(getFileRequest(UNKNOWN_ID)));
    });
    // Today's behaviour; the spec defines gRPC over HTTP/2 only. Today HTTP/1.1 gets a full gRPC
    // answer: 200, application/grpc+proto, a chunked body and the status in HTTP/1.1 trailers.
    expect(answer.status).toBe(200);
    expect(answer.headers["content-type"]).toBe("application/grpc+proto");
    expect(answer.body.length).toBe(0);
    expect(answer.trailers["grpc-status"]).toBe(String(Status.NOT_FOUND));
    expect(decodeGrpcMessage(answer.trailers["grpc-message"] ?? "")).toBe(`No such file: '${UNKNOWN_ID}'`);
  });

  it("a success has :status 200, a gRPC content-type, grpc-status 0 in the trailers, and echoes a sane x-request-id", async () => {
    const ok = await rawCall(session, `${FILES}/GetFile`, { headers: { "x-request-id": "grpc-protocol-ok-1" }, body: envelope(getFileRequest(bigFile.id)) });
    expectGrpcAnswer(ok, Status.OK, "GetFile");
    expect(ok.trailersOnly).toBe(false);
    expect(ok.trailers?.["grpc-status"]).toBe("0");
    expect(ok.messages).toHaveLength(1);
    expect(ok.messages[0]!.flag).toBe(0);
    // On success the id comes back in the response headers.
    expect(ok.headers?.["x-request-id"]).toBe("grpc-protocol-ok-1");

    const failed = await rawCall(session, `${FILES}/GetFile`, { headers: { "x-request-id": "grpc-protocol-err-1" }, body: envelope(getFileRequest(UNKNOWN_ID)) });
    expectGrpcAnswer(failed, Status.NOT_FOUND, "GetFile of an unknown id");
    // On an error it comes back too: today in the trailers (the headers went out before the call
    // ran); in the one HEADERS frame of a Trailers-Only answer would do as well.
    const echoed = failed.trailersOnly ? failed.headers?.["x-request-id"] : (failed.headers?.["x-request-id"] ?? failed.trailers?.["x-request-id"]);
    expect(echoed).toBe("grpc-protocol-err-1");

    // An id that is not sane (a space, or over 128 characters) is replaced by a fresh one.
    for (const insane of ["has space", "x".repeat(129)]) {
      const r = await rawCall(session, `${FILES}/GetFile`, { headers: { "x-request-id": insane }, body: envelope(getFileRequest(bigFile.id)) });
      expectGrpcAnswer(r, Status.OK, "GetFile");
      expect(r.headers?.["x-request-id"]).toMatch(/^[0-9a-f]{32}$/);
    }
  });
});

// ---------------------------------------------------------------------------
// 11. Framing: messages split across writes and DATA frames, and many in one write
// ---------------------------------------------------------------------------

describe("message framing", () => {
  it("an upload whose bytes arrive in pieces of 1, 3, 7 and 4096 bytes, splitting prefixes and fields, is stored intact", async () => {
    const data = randomBytes(300_000);
    const body = Buffer.concat([envelope(metadataMessage("pieces.bin")), ...chunkEnvelopes(data, 70_000)]);
    const pieces: Buffer[] = [];
    const sizes = [1, 3, 7, 4096];
    for (let at = 0, i = 0; at < body.length; i++) {
      const size = sizes[i % sizes.length]!;
      pieces.push(body.subarray(at, at + size));
      at += size;
    }
    expect(Buffer.concat(pieces).equals(body)).toBe(true);
    // node:http2, one write per piece (it may still coalesce writes into larger DATA frames).
    const { r, file } = await rawUpload(session, pieces);
    expectGrpcAnswer(r, Status.OK, "UploadFile in pieces");
    expect(file?.sha256).toBe(sha256(data));
    expect(Number(file?.bytes)).toBe(data.length);
    // Hand-made frames: each piece exactly one DATA frame, then an empty DATA frame with END_STREAM.
    const conn = await RawH2Connection.connect(server.port);
    try {
      const id = conn.openStream(requestHeaders(server.port, `${FILES}/UploadFile`));
      await conn.sendDataFrames(id, [...pieces, Buffer.alloc(0)], true);
      await conn.until(() => conn.streams.get(id)!.endStream || conn.streams.get(id)!.rstCode !== undefined, 10_000, "the UploadFile answer");
      const answer = conn.streams.get(id)!;
      expect(answer.rstCode).toBeUndefined();
      const { messages, rest } = splitEnvelopes(Buffer.concat(answer.data));
      expect(rest.length).toBe(0);
      expect(messages).toHaveLength(1);
      const framed = fromBinary(UploadFileResponseSchema, messages[0]!.data).file;
      expect(framed?.sha256).toBe(sha256(data));
      expect(framed?.id).not.toBe(file?.id);
    } finally {
      conn.close();
    }
  });

  it("many small messages in one write are each read", async () => {
    const parts = Array.from({ length: 500 }, () => randomBytes(1 + Math.floor(Math.random() * 200)));
    const oneWrite = Buffer.concat([envelope(metadataMessage("many.bin")), ...parts.map((p) => envelope(chunkMessage(p)))]);
    const { r, file } = await rawUpload(session, [oneWrite]);
    expectGrpcAnswer(r, Status.OK, "UploadFile in one write");
    expect(file?.sha256).toBe(sha256(Buffer.concat(parts)));
  });
});

// ---------------------------------------------------------------------------
// 12. Protobuf edge cases in UploadFileRequest
// ---------------------------------------------------------------------------

describe("protobuf edge cases", () => {
  it("unknown fields are ignored and an empty chunk is accepted", async () => {
    // Field 15, varint 42 (key 0x78), after the chunk: protobuf says a parser skips unknown fields.
    const withUnknown = Buffer.concat([chunkMessage(Buffer.from("hello")), Buffer.from([0x78, 0x2a])]);
    const { r, file } = await rawUpload(session, [
      envelope(metadataMessage("edges.bin")),
      envelope(withUnknown),
      envelope(chunkMessage(new Uint8Array(0))), // an empty chunk, in the middle
      envelope(Buffer.alloc(0)), // an empty message: no payload set at all
      envelope(chunkMessage(Buffer.from(" world"))),
    ]);
    // Today's behaviour for the empty message: a zero-length chunk is encoded as field 2 with
    // length 0, but a message with no field set has no payload case; the server rejects it.
    expectGrpcAnswer(r, Status.INVALID_ARGUMENT, "UploadFile with an empty message");
    expect(decodeGrpcMessage(rawGrpcMessage(r)!)).toBe("after the first UploadFileRequest, every message must carry a chunk");
    expect(file).toBeUndefined();
    const ok = await rawUpload(session, [
      envelope(metadataMessage("edges.bin")),
      envelope(withUnknown),
      envelope(chunkMessage(new Uint8Array(0))),
      envelope(chunkMessage(Buffer.from(" world"))),
    ]);
    expectGrpcAnswer(ok.r, Status.OK, "UploadFile with an unknown field and an empty chunk");
    expect(ok.file?.sha256).toBe(sha256(Buffer.from("hello world")));
    expect(await download(session, ok.file!.id)).toEqual(Buffer.from("hello world"));
  });

  it("a oneof set twice in one message: the last field wins", async () => {
    // Protobuf: of several oneof members on the wire, the last one parsed is the one set.
    const metaThenChunk = Buffer.concat([metadataMessage("oneof.bin"), chunkMessage(Buffer.from("XY"))]);
    const chunkThenMeta = Buffer.concat([chunkMessage(Buffer.from("XY")), metadataMessage("oneof.bin")]);
    // First message metadata-then-chunk: it is a chunk, so the upload has no metadata first.
    const first = await rawUpload(session, [envelope(metaThenChunk), envelope(chunkMessage(Buffer.from("Z")))]);
    expectGrpcAnswer(first.r, Status.INVALID_ARGUMENT, "metadata+chunk as the first message");
    expect(decodeGrpcMessage(rawGrpcMessage(first.r)!)).toBe("the first UploadFileRequest must carry metadata; chunks come after it");
    // First message chunk-then-metadata: it is the metadata; the "XY" chunk is gone.
    const second = await rawUpload(session, [envelope(chunkThenMeta), envelope(chunkMessage(Buffer.from("Z")))]);
    expectGrpcAnswer(second.r, Status.OK, "chunk+metadata as the first message");
    expect(second.file?.sha256).toBe(sha256(Buffer.from("Z")));
    // A later message metadata-then-chunk: it is a chunk.
    const third = await rawUpload(session, [envelope(metadataMessage("oneof.bin")), envelope(metaThenChunk)]);
    expectGrpcAnswer(third.r, Status.OK, "metadata+chunk as a later message");
    expect(third.file?.sha256).toBe(sha256(Buffer.from("XY")));
  });

  it("a message that is not valid protobuf is INTERNAL", async () => {
    const garbage = Buffer.from([0xff, 0xff, 0xff]);
    const upload = await rawUpload(session, [envelope(metadataMessage("garbage.bin")), envelope(garbage)]);
    const unary = await rawCall(session, `${FILES}/GetFile`, { body: envelope(garbage) });
    for (const [what, r] of [["UploadFile", upload.r], ["GetFile", unary]] as const) {
      // Today's behaviour, as grpc-go and grpc-java answer a request they cannot unmarshal (the spec names no code).
      expectGrpcAnswer(r, Status.INTERNAL, what);
    }
    expect(await filenames(session)).not.toContain("garbage.bin");
  });
});

// ---------------------------------------------------------------------------
// AddUploadPart: its data field streamed from the DATA frames, not decoded whole

describe("AddUploadPart with its data streamed from the wire", () => {
  const partRequest = (uploadId: string, data: Uint8Array) => Buffer.from(toBinary(AddUploadPartRequestSchema, create(AddUploadPartRequestSchema, { uploadId, data })));

  async function newUpload(bytes: number): Promise<string> {
    const r = await rawCall(session, `${FILES}/CreateUpload`, {
      body: envelope(Buffer.from(toBinary(CreateUploadRequestSchema, create(CreateUploadRequestSchema, { filename: "streamed.bin", purpose: FilePurpose.USER_DATA, bytes: BigInt(bytes) })))),
    });
    expectGrpcAnswer(r, Status.OK, "CreateUpload");
    return fromBinary(CreateUploadResponseSchema, r.messages[0]!.data).upload!.id;
  }

  /** The part objects stored for an upload (local storage), temp files left out. */
  async function partObjects(uploadId: string): Promise<string[]> {
    return (await readdir(join(serverCwd, "data", "files", "uploads", uploadId)).catch(() => [] as string[])).filter((n) => !n.startsWith("."));
  }

  function partOf(r: RawGrpcResult) {
    return fromBinary(AddUploadPartResponseSchema, r.messages[0]!.data).part!;
  }

  it("takes a part whose prefix, fields and first data bytes arrive one byte per write, and a 6 MiB part in one write, and completes them into the right file", async () => {
    const small = randomBytes(70_000);
    const big = randomBytes(6 * MiB);
    const id = await newUpload(small.length + big.length);
    const body = envelope(partRequest(id, small));
    const bytewise = [...body.subarray(0, 80)].map((b) => Buffer.from([b]));
    const first = await rawCall(session, `${FILES}/AddUploadPart`, { body: [...bytewise, body.subarray(80)] });
    expectGrpcAnswer(first, Status.OK, "a part sent a byte at a time");
    expect(partOf(first).sha256).toBe(sha256(small));
    const second = await rawCall(session, `${FILES}/AddUploadPart`, { body: envelope(partRequest(id, big)) });
    expectGrpcAnswer(second, Status.OK, "a 6 MiB part");
    expect(partOf(second)).toMatchObject({ bytes: BigInt(big.length), sha256: sha256(big) });
    const done = await rawCall(session, `${FILES}/CompleteUpload`, {
      body: envelope(Buffer.from(toBinary(CompleteUploadRequestSchema, create(CompleteUploadRequestSchema, { uploadId: id, partIds: [partOf(first).id, partOf(second).id] })))),
    });
    expectGrpcAnswer(done, Status.OK, "CompleteUpload");
    expect(fromBinary(CompleteUploadResponseSchema, done.messages[0]!.data).upload!.file!.sha256).toBe(sha256(Buffer.concat([small, big])));
  });

  it("lets unknown fields after data through, and refuses upload_id again after data with INVALID_ARGUMENT, keeping nothing of it", async () => {
    const id = await newUpload(10 * MiB);
    const data = randomBytes(100_000);
    const unknownField = Buffer.from([(15 << 3) | 0, 1]); // field 15, varint 1
    const ok = await rawCall(session, `${FILES}/AddUploadPart`, { body: envelope(Buffer.concat([partRequest(id, data), unknownField])) });
    expectGrpcAnswer(ok, Status.OK, "an unknown field after data");
    expect(partOf(ok).sha256).toBe(sha256(data));
    const idAgain = Buffer.from(toBinary(AddUploadPartRequestSchema, create(AddUploadPartRequestSchema, { uploadId: id })));
    const refused = await rawCall(session, `${FILES}/AddUploadPart`, { body: envelope(Buffer.concat([partRequest(id, randomBytes(100_000)), idAgain])) });
    expectGrpcAnswer(refused, Status.INVALID_ARGUMENT, "upload_id after data");
    expect(decodeGrpcMessage(rawGrpcMessage(refused)!)).toMatch(/field 1 after data/);
    expect(await partObjects(id)).toEqual([partOf(ok).id]);
  });

  it("a message cut short, a second message, and a reset in the middle of the data each fail and keep nothing", async () => {
    const id = await newUpload(10 * MiB);
    const body = envelope(partRequest(id, randomBytes(MiB)));
    const cut = await rawCall(session, `${FILES}/AddUploadPart`, { body: body.subarray(0, body.length - 1000) });
    expectGrpcAnswer(cut, Status.INVALID_ARGUMENT, "a message cut short");
    expect(decodeGrpcMessage(rawGrpcMessage(cut)!)).toMatch(/incomplete envelope/);
    const twice = await rawCall(session, `${FILES}/AddUploadPart`, { body: [body, envelope(partRequest(id, randomBytes(10)))] });
    expectGrpcAnswer(twice, Status.UNIMPLEMENTED, "two messages in a unary call");
    expect(decodeGrpcMessage(rawGrpcMessage(twice)!)).toMatch(/extra input message/);

    // Hand-made frames, so the reset comes without END_STREAM (see "cancellation" above).
    const conn = await RawH2Connection.connect(server.port);
    try {
      const stream = conn.openStream({ ...requestHeaders(server.port, `${FILES}/AddUploadPart`), "x-request-id": "grpc-protocol-cancelled-part" });
      await conn.sendData(stream, body.subarray(0, 600_000));
      await sleep(200); // the server reads and stores what it got
      conn.reset(stream, http2.constants.NGHTTP2_CANCEL);
      await eventually(async () => {
        const line = server.output.find((l) => l.includes('"grpc-protocol-cancelled-part"'));
        expect(line, "the server's log line for the cancelled call").toBeDefined();
        expect(JSON.parse(line!)).toMatchObject({ rpc: "files.v1.FilesService/AddUploadPart", code: "Canceled", bytes_in: 600_000 - 5 - 2 - id.length - 4 });
      });
    } finally {
      conn.close();
    }
    expect(await partObjects(id)).toEqual([]);
  });

  it("a gzip-compressed part is inflated whole, as before, and stored the same", async () => {
    const id = await newUpload(MiB);
    const data = Buffer.alloc(MiB, 7);
    const r = await rawCall(session, `${FILES}/AddUploadPart`, {
      headers: { "grpc-encoding": "gzip" },
      body: envelope(zlib.gzipSync(partRequest(id, data)), { compressed: true }),
    });
    expectGrpcAnswer(r, Status.OK, "a compressed part");
    expect(partOf(r).sha256).toBe(sha256(data));
  });

  it("a part with no data field is refused as empty, and one over the message limit from its prefix alone", async () => {
    const id = await newUpload(MiB);
    const empty = await rawCall(session, `${FILES}/AddUploadPart`, { body: envelope(partRequest(id, new Uint8Array(0))) });
    expectGrpcAnswer(empty, Status.INVALID_ARGUMENT, "an empty part");
    expect(decodeGrpcMessage(rawGrpcMessage(empty)!)).toMatch(/empty/);
    const huge = await rawCall(smallSession, `${FILES}/AddUploadPart`, { body: envelope(Buffer.alloc(10), { declaredLength: SMALL_LIMIT + 1 }) });
    expectGrpcAnswer(huge, Status.RESOURCE_EXHAUSTED, "a prefix over the limit");
  });
});
