/**
 * The bad-input catalogue (issue #5): one row per malformed input, over REST (raw node:http, so paths,
 * headers and bodies go out exactly as written) and over gRPC (connect-node, and @grpc/grpc-js where a
 * second implementation or a raw stream is needed), against real server processes on moto S3 and SQLite.
 *
 * Every row asserts the exact status or gRPC code and the field at fault (REST `error.param`; gRPC has no
 * param, so the message must name the field), then that nothing else changed: the file count, the
 * reference files' bytes, the pending upload, every key in the bucket and the multipart uploads.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ExpiresAfterAnchor,
  FilePurpose,
  FilesService,
  UploadFileRequestSchema,
  UploadFileResponseSchema,
  type UploadFileRequest,
} from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rawRequest, type RawAnswer } from "../support/raw-http.js";
import { MiB, rejection, sha256 } from "../support/test-helpers.js";

const MAX_FILE = MiB;
const MAX_UPLOAD = 2 * MiB;
const MAX_PART = 512 * 1024;
const PENDING_BYTES = 1000;
// Obviously fake test keys.
const ALICE = { authorization: "Bearer sk-test-bad-input-alice-0000" };
const BOB = { authorization: "Bearer sk-test-bad-input-bob-11111111" };
const UNKNOWN_FILE = `file-${"0".repeat(32)}`;
const UNKNOWN_PART = `part_${"0".repeat(32)}`;
const TEN_KB_ID = `file-${"a".repeat(10 * 1024)}`;

// ---------------------------------------------------------------------------------------------------
// Raw HTTP

type Answer = RawAnswer;

/** One request on its own connection, with the path sent verbatim (fetch would normalise it). */
const send = (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> =>
  rawRequest(port, method, path, { headers, body });

const json = (body: unknown) => ({ headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** OpenAI's error shape with exactly its four keys, the exact status and param, and no-retry on a 4xx. */
function expectError(answer: Answer, status: number, param: string | null, message?: RegExp): ErrorBody {
  const text = answer.body.toString("utf8");
  const context = `${answer.status} ${text.slice(0, 500)}`;
  expect(answer.status, context).toBe(status);
  expect(answer.headers["content-type"], context).toBe("application/json");
  const parsed = JSON.parse(text) as { error: ErrorBody };
  expect(Object.keys(parsed), context).toEqual(["error"]);
  expect(Object.keys(parsed.error).sort(), context).toEqual(["code", "message", "param", "type"]);
  expect(parsed.error.type, context).toBe("invalid_request_error");
  expect(parsed.error.message.length, context).toBeGreaterThan(0);
  expect(parsed.error.param, context).toBe(param);
  if (message) expect(parsed.error.message, context).toMatch(message);
  expect(answer.headers["x-should-retry"], context).toBe("false");
  return parsed.error;
}

// ---------------------------------------------------------------------------------------------------
// multipart/form-data, byte by byte

const BOUNDARY = "----bad-input-5f2c";
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

type Part = { name: string; value: string } | { name: string; filename?: string; data: Buffer | string; disposition?: string };

function form(parts: Part[], { close = true, boundary = BOUNDARY, eol = "\r\n" } = {}): Buffer {
  const out: Buffer[] = [];
  for (const part of parts) {
    out.push(Buffer.from(`--${boundary}${eol}`));
    if ("value" in part) {
      out.push(Buffer.from(`Content-Disposition: form-data; name="${part.name}"${eol}${eol}${part.value}${eol}`));
      continue;
    }
    const disposition = part.disposition ?? `form-data; name="${part.name}"; filename="${part.filename ?? "data.bin"}"`;
    out.push(Buffer.from(`Content-Disposition: ${disposition}${eol}Content-Type: application/octet-stream${eol}${eol}`));
    out.push(Buffer.from(part.data), Buffer.from(eol));
  }
  if (close) out.push(Buffer.from(`--${boundary}--${eol}`));
  return Buffer.concat(out);
}

const filePart = (data: Buffer | string = "hello", filename = "hello.txt"): Part => ({ name: "file", filename, data });
const field = (name: string, value: string): Part => ({ name, value });
const multipart = (body: Buffer, contentType = MULTIPART) => ({ headers: { "content-type": contentType }, body });

// ---------------------------------------------------------------------------------------------------
// Servers, fixtures and the state every row must leave as it found it

interface Ref {
  id: string;
  data: Buffer;
}

interface Target {
  server: ServerProcess;
  bucket: string;
  /** The principal whose files, upload and keys are checked (empty: authentication off). */
  auth: Record<string, string>;
  /** Other principals whose file counts must not change either. */
  others: Record<string, string>[];
  refs: Ref[];
  uploadId: string;
  partId: string;
  /** The pending upload's one part, exactly `PENDING_BYTES` long. */
  partData: Buffer;
}

let main: Target;
let authed: Target;

async function uploadRef(server: ServerProcess, auth: Record<string, string>, name: string, purpose: string, data: Buffer): Promise<Ref> {
  const { headers, body } = multipart(form([field("purpose", purpose), filePart(data, name)]));
  const answer = await send(server.port, "POST", "/v1/files", { ...auth, ...headers }, body);
  expect(answer.status, answer.body.toString()).toBe(200);
  return { id: (JSON.parse(answer.body.toString()) as { id: string }).id, data };
}

async function pendingUpload(server: ServerProcess, auth: Record<string, string>): Promise<{ uploadId: string; partId: string; partData: Buffer }> {
  const { headers, body } = json({ filename: "pending.bin", purpose: "batch", bytes: PENDING_BYTES, mime_type: "application/octet-stream" });
  const created = await send(server.port, "POST", "/v1/uploads", { ...auth, ...headers }, body);
  expect(created.status, created.body.toString()).toBe(200);
  const uploadId = (JSON.parse(created.body.toString()) as { id: string }).id;
  const partData = randomBytes(PENDING_BYTES);
  const part = multipart(form([{ name: "data", filename: "blob", data: partData }]));
  const added = await send(server.port, "POST", `/v1/uploads/${uploadId}/parts`, { ...auth, ...part.headers }, part.body);
  expect(added.status, added.body.toString()).toBe(200);
  return { uploadId, partId: (JSON.parse(added.body.toString()) as { id: string }).id, partData };
}

async function fixtures(server: ServerProcess, bucket: string, auth: Record<string, string>, others: Record<string, string>[]): Promise<Target> {
  const refs = [
    await uploadRef(server, auth, "ref-a.txt", "assistants", randomBytes(64 * 1024)),
    await uploadRef(server, auth, "ref-b.bin", "batch", randomBytes(100_000)),
    await uploadRef(server, auth, "ref-c.bin", "user_data", Buffer.from("c")),
  ];
  return { server, bucket, auth, others, refs, ...(await pendingUpload(server, auth)) };
}

interface State {
  counts: number[];
  refs: Record<string, string>;
  upload: string;
  keys: string[];
  multipart: { key: string; uploadId: string }[];
}

async function count(t: Target, auth: Record<string, string>): Promise<number> {
  const answer = await send(t.server.port, "GET", "/v1/files?limit=10000", auth);
  expect(answer.status, answer.body.toString()).toBe(200);
  const page = JSON.parse(answer.body.toString()) as { data: unknown[]; has_more: boolean };
  expect(page.has_more).toBe(false);
  return page.data.length;
}

/** What no refused request may change; the server must also still be running. */
async function state(t: Target): Promise<State> {
  expect(t.server.child.exitCode, t.server.output.slice(-20).join("\n")).toBeNull();
  const refs: Record<string, string> = {};
  for (const ref of t.refs) {
    const answer = await send(t.server.port, "GET", `/v1/files/${ref.id}/content`, t.auth);
    expect(answer.status).toBe(200);
    refs[ref.id] = sha256(answer.body);
  }
  const upload = await send(t.server.port, "GET", `/v1/uploads/${t.uploadId}`, t.auth);
  expect(upload.status).toBe(200);
  return {
    counts: [await count(t, t.auth), ...(await Promise.all(t.others.map((auth) => count(t, auth))))],
    refs,
    upload: (JSON.parse(upload.body.toString()) as { status: string }).status,
    keys: (await listAllKeys(t.bucket)).sort(),
    multipart: await listMultipartUploads(t.bucket),
  };
}

function expectBaseline(before: State, t: Target): void {
  expect(before.refs).toEqual(Object.fromEntries(t.refs.map((r) => [r.id, sha256(r.data)])));
  expect(before.upload).toBe("pending");
}

beforeAll(async () => {
  const mainBucket = await createTestBucket("bad-input");
  const authBucket = await createTestBucket("bad-input-auth");
  const [mainDir, authDir] = [await tempDir("bad-input"), await tempDir("bad-input-auth")];
  const [mainServer, authServer] = await Promise.all([
    startServer({
      config: {
        ...s3ProviderConfig(testS3Endpoint(), mainBucket, { type: "sqlite", db_path: join(mainDir, "files.db") }),
        server: { limits: { max_file_bytes: MAX_FILE, max_upload_bytes: MAX_UPLOAD, max_part_bytes: MAX_PART } },
      },
    }),
    startServer({
      config: {
        ...s3ProviderConfig(testS3Endpoint(), authBucket, { type: "sqlite", db_path: join(authDir, "files.db") }),
        server: {
          auth: {
            api_keys: [
              { key: ALICE.authorization.slice(7), principal: "alice" },
              { key: BOB.authorization.slice(7), principal: "bob" },
            ],
          },
        },
      },
    }),
  ]);
  main = await fixtures(mainServer, mainBucket, {}, []);
  // Bob owns a file too, so "his list is unchanged" is not trivially an empty list.
  await uploadRef(authServer, BOB, "bob.txt", "batch", Buffer.from("bob's"));
  authed = await fixtures(authServer, authBucket, ALICE, [BOB]);
});

afterAll(async () => {
  // A crash during the catalogue would show here as a non-zero or signal exit.
  expect(await main?.server.stop()).toBe(0);
  expect(await authed?.server.stop()).toBe(0);
});

// ---------------------------------------------------------------------------------------------------
// REST rows

interface RestRow {
  name: string;
  /** The server and principal; main unless said. */
  on?: "authed";
  send: (t: Target) => Promise<Answer>;
  status: number;
  /** The expected `error.param` of an error answer. */
  param?: string | null;
  message?: RegExp;
  /** For answers that are not errors: checks them, and removes whatever they created. */
  ok?: (answer: Answer, t: Target) => Promise<void>;
}

const post = (path: string, req: { headers: Record<string, string>; body: Buffer | string }) => (t: Target) =>
  send(t.server.port, "POST", path, { ...t.auth, ...req.headers }, req.body);
const postFiles = (parts: Part[], options?: Parameters<typeof form>[1]) => post("/v1/files", multipart(form(parts, options)));
const get = (path: string | ((t: Target) => string), headers: Record<string, string> = {}) => (t: Target) =>
  send(t.server.port, "GET", typeof path === "string" ? path : path(t), { ...t.auth, ...headers });

const MULTIPART_ROWS: RestRow[] = [
  {
    name: "multipart: the header's boundary is not the body's",
    send: post("/v1/files", multipart(form([field("purpose", "batch"), filePart()]), "multipart/form-data; boundary=not-the-one")),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: no boundary parameter",
    send: post("/v1/files", multipart(form([field("purpose", "batch"), filePart()]), "multipart/form-data")),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: an empty boundary parameter",
    send: post("/v1/files", multipart(form([field("purpose", "batch"), filePart()]), "multipart/form-data; boundary=")),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: cut off inside the file, no closing boundary",
    send: post("/v1/files", multipart(form([field("purpose", "batch"), filePart(randomBytes(200_000))], { close: false }).subarray(0, 150_000))),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: the closing delimiter is missing after a complete file part",
    send: postFiles([field("purpose", "batch"), filePart()], { close: false }),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: part headers never end (no blank line)",
    send: post("/v1/files", multipart(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\nhello\r\n--${BOUNDARY}--\r\n`))),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: bare LF line endings",
    send: postFiles([field("purpose", "batch"), filePart()], { eol: "\n" }),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: an empty body",
    send: post("/v1/files", multipart(Buffer.alloc(0))),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  {
    name: "multipart: random bytes",
    send: post("/v1/files", multipart(randomBytes(8192))),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
  { name: "multipart: only the closing delimiter (no parts)", send: postFiles([]), status: 400, param: "file", message: /no 'file' part/ },
  { name: "multipart: the file part is missing", send: postFiles([field("purpose", "batch")]), status: 400, param: "file", message: /no 'file' part/ },
  {
    name: "multipart: the file part appears twice",
    send: postFiles([field("purpose", "batch"), filePart(randomBytes(4096), "one.bin"), filePart(randomBytes(4096), "two.bin")]),
    status: 400,
    param: "file",
    message: /'file' was given more than once/,
  },
  {
    name: "multipart: file sent as a text field",
    send: postFiles([field("purpose", "batch"), field("file", "not a file part")]),
    status: 400,
    param: "file",
    message: /must be sent as a file part/,
  },
  {
    name: "multipart: an unexpected second file part under another name",
    send: postFiles([field("purpose", "batch"), filePart(), { name: "other", filename: "o.bin", data: "o" }]),
    status: 400,
    param: "other",
    message: /'other' is not expected/,
  },
  {
    name: "multipart: the file part has an empty filename",
    send: postFiles([field("purpose", "batch"), filePart("x", "")]),
    status: 400,
    param: "filename",
    message: /filename is required/,
  },
  {
    name: "content type: application/json instead of a form",
    send: post("/v1/files", json({ purpose: "batch", file: "hello" })),
    status: 415,
    param: null,
    message: /Expected a multipart\/form-data body, got 'application\/json'/,
  },
  {
    name: "content type: multipart/mixed",
    send: post("/v1/files", multipart(form([field("purpose", "batch"), filePart()]), `multipart/mixed; boundary=${BOUNDARY}`)),
    status: 415,
    param: null,
    message: /got 'multipart\/mixed'/,
  },
  {
    name: "content type: none",
    send: post("/v1/files", { headers: {}, body: form([field("purpose", "batch"), filePart()]) }),
    status: 415,
    param: null,
    message: /got none/,
  },
];

const PURPOSE_ROWS: RestRow[] = [
  ...(["nope", "BATCH", " batch"] as const).map((purpose) => ({
    name: `purpose: unknown ${JSON.stringify(purpose)} before the file`,
    send: postFiles([field("purpose", purpose), filePart()]),
    status: 400,
    param: "purpose",
    message: /is not a known purpose/,
  })),
  {
    name: "purpose: unknown, after the file (the bytes were already stored)",
    send: postFiles([filePart(randomBytes(300_000)), field("purpose", "nope")]),
    status: 400,
    param: "purpose",
    message: /'nope' is not a known purpose/,
  },
  { name: "purpose: empty", send: postFiles([field("purpose", ""), filePart()]), status: 400, param: "purpose", message: /purpose is required/ },
  { name: "purpose: missing", send: postFiles([filePart()]), status: 400, param: "purpose", message: /purpose is required/ },
  {
    name: "purpose: an output purpose (batch_output)",
    send: postFiles([field("purpose", "batch_output"), filePart()]),
    status: 400,
    param: "purpose",
    message: /produced by the server/,
  },
  {
    name: "purpose: given twice",
    send: postFiles([field("purpose", "batch"), filePart(), field("purpose", "batch")]),
    status: 400,
    param: "purpose",
    message: /given more than once/,
  },
];

const expiresForm = (fields: [string, string][]) => postFiles([field("purpose", "batch"), filePart(), ...fields.map(([n, v]) => field(n, v))]);
const ANCHOR: [string, string] = ["expires_after[anchor]", "created_at"];
const seconds = (value: string): [string, string] => ["expires_after[seconds]", value];

const EXPIRES_ROWS: RestRow[] = [
  ...["abc", "", "3600.5", "1e4", "0x10", "+3600", " 3600", "-3600", "99999999999999999999"].map((value) => ({
    name: `expires_after[seconds]: not a non-negative integer ${JSON.stringify(value)}`,
    send: expiresForm([ANCHOR, seconds(value)]),
    status: 400,
    param: "expires_after.seconds",
    message: /expires_after.seconds must be/,
  })),
  ...["0", "3599", "2592001", "999999999999999"].map((value) => ({
    name: `expires_after[seconds]: out of range ${value}`,
    send: expiresForm([ANCHOR, seconds(value)]),
    status: 400,
    param: "expires_after.seconds",
    message: /between 3600 and 2592000/,
  })),
  {
    name: "expires_after[seconds]: missing, anchor given",
    send: expiresForm([ANCHOR]),
    status: 400,
    param: "expires_after.seconds",
    message: /expires_after.seconds must be/,
  },
  {
    name: "expires_after[anchor]: unknown (last_active_at)",
    send: expiresForm([["expires_after[anchor]", "last_active_at"], seconds("3600")]),
    status: 400,
    param: "expires_after.anchor",
    message: /must be 'created_at'/,
  },
  {
    name: "expires_after[anchor]: missing, seconds given",
    send: expiresForm([seconds("3600")]),
    status: 400,
    param: "expires_after.anchor",
    message: /must be 'created_at'/,
  },
  {
    name: "expires_after[seconds]: given twice",
    send: expiresForm([ANCHOR, seconds("3600"), seconds("7200")]),
    status: 400,
    param: "expires_after[seconds]",
    message: /given more than once/,
  },
];

const LIST_ROWS: RestRow[] = [
  ...["0", "-1", "10001", "abc", "", "1.5", "1e3", "%2B5", "%205", "9999999", "0x10"].map((value) => ({
    name: `list: limit=${value}`,
    send: get(`/v1/files?limit=${value}`),
    status: 400,
    param: "limit",
    message: /limit must be an integer between 1 and 10000/,
  })),
  { name: "list: limit given twice", send: get("/v1/files?limit=1&limit=2"), status: 400, param: "limit", message: /more than once/ },
  { name: "list: order=sideways", send: get("/v1/files?order=sideways"), status: 400, param: "order", message: /order must be 'asc' or 'desc'/ },
  { name: "list: purpose=nope", send: get("/v1/files?purpose=nope"), status: 400, param: "purpose", message: /not a known purpose/ },
  ...[
    ["an unknown well-formed id", UNKNOWN_FILE],
    ["../x", "..%2Fx"],
    ["file-../../etc", "file-..%2F..%2Fetc"],
    ["a 10 KB id", TEN_KB_ID],
    ["an upload id", "upload_" + "0".repeat(32)],
  ].map(([what, value]) => ({
    name: `list: after=${what}`,
    send: get(`/v1/files?after=${value}`),
    status: 400,
    param: "after",
    message: /after: no such file/,
  })),
  {
    name: "list: after= (empty) is no cursor",
    send: get("/v1/files?after="),
    status: 200,
    ok: async (answer: Answer, t: Target) => {
      const page = JSON.parse(answer.body.toString()) as { data: { id: string }[] };
      expect(page.data.map((f) => f.id).sort()).toEqual(t.refs.map((r) => r.id).sort());
    },
  },
];

/** Ids as they appear in a path segment: each must name no file, and reach neither SQL nor a key. */
const BAD_IDS: [string, string][] = [
  ["../x (encoded slash)", "..%2Fx"],
  ["file-../../etc (encoded slashes)", "file-..%2F..%2Fetc"],
  ["a 10 KB id", TEN_KB_ID],
  ["file-%2F..%2Fx", "file-%2F..%2Fx"],
  ["double-encoded file-%252F..%252Fx", "file-%252F..%252Fx"],
  ["%2e%2e%2fx", "%2e%2e%2fx"],
  ["invalid percent-encoding", "file-%E0%A4%A"],
  ["a NUL byte", "file-%00"],
  ["an upper-case id", `FILE-${"A".repeat(32)}`],
  ["an unknown well-formed id", UNKNOWN_FILE],
];

const ID_ROWS: RestRow[] = BAD_IDS.flatMap(([what, segment]) =>
  (
    [
      ["retrieve", "GET", `/v1/files/${segment}`],
      ["content", "GET", `/v1/files/${segment}/content`],
      ["delete", "DELETE", `/v1/files/${segment}`],
    ] as const
  ).map(([op, method, path]) => ({
    name: `id ${what}: ${op}`,
    send: (t: Target) => send(t.server.port, method, path, t.auth),
    status: 404,
    param: "file_id",
    message: /^No such file: '/,
  })),
);

// Dot segments are removed before routing (RFC 3986 §5.2.4), so these paths never carry the id as written.
const DOT_SEGMENT_ROWS: RestRow[] = [
  ...(["GET", "DELETE"] as const).map((method) => ({
    name: `raw path: ${method} /v1/files/../x (resolves to /v1/x, no route)`,
    send: (t: Target) => send(t.server.port, method, "/v1/files/../x", t.auth),
    status: 404,
    param: null,
    message: /^No route for /,
  })),
  {
    name: "raw path: GET /v1/files/../x/content (resolves to /v1/x/content, no route)",
    send: get("/v1/files/../x/content"),
    status: 404,
    param: null,
    message: /^No route for /,
  },
  ...(
    [
      ["GET", "/v1/files/file-../../etc"],
      ["GET", "/v1/files/file-../../etc/content"],
      ["DELETE", "/v1/files/file-../../etc"],
    ] as const
  ).map(([method, path]) => ({
    name: `raw path: ${method} ${path} (resolves to the id 'etc')`,
    send: (t: Target) => send(t.server.port, method, path, t.auth),
    status: 404,
    param: "file_id",
    message: /^No such file: 'etc'$/,
  })),
];

const UPLOAD_ID_ROWS: RestRow[] = (
  [
    ["../x", "..%2Fx"],
    ["a 10 KB id", `upload_${"a".repeat(10 * 1024)}`],
    ["upload_%2F..%2Fx", "upload_%2F..%2Fx"],
    ["a file id", UNKNOWN_FILE],
  ] as const
).flatMap(([what, segment]) => [
  { name: `upload id ${what}: retrieve`, send: get(`/v1/uploads/${segment}`), status: 404, param: "upload_id", message: /^No such upload: '/ },
  {
    name: `upload id ${what}: cancel`,
    send: post(`/v1/uploads/${segment}/cancel`, { headers: {}, body: "" }),
    status: 404,
    param: "upload_id",
    message: /^No such upload: '/,
  },
  {
    name: `upload id ${what}: complete`,
    send: (t: Target) => post(`/v1/uploads/${segment}/complete`, json({ part_ids: [t.partId] }))(t),
    status: 404,
    param: "upload_id",
    message: /^No such upload: '/,
  },
  {
    name: `upload id ${what}: add a part`,
    send: post(`/v1/uploads/${segment}/parts`, multipart(form([{ name: "data", filename: "blob", data: randomBytes(1000) }]))),
    status: 404,
    param: "upload_id",
    message: /^No such upload: '/,
  },
]);

const RANGE_ROWS: RestRow[] = [
  // RFC 9110 §14.2: a server MAY ignore Range; it MUST ignore an unknown range unit, and MAY ignore an
  // invalid ranges-specifier or a multi-range request. The server ignores all of these: 200, whole file.
  ...[
    ["garbage", "garbage"],
    ["bytes=abc", "bytes=abc"],
    ["an unknown unit", "items=0-5"],
    ["multi-range", "bytes=0-0,5-9"],
    ["multi-range with spaces", "bytes=0-1, 4-8, 20-"],
    ["last before first", "bytes=5-2"],
    ["an empty range set", "bytes="],
    ["a lone dash", "bytes=-"],
    ["a double dash", "bytes=--5"],
    ["a negative first position", "bytes=-5-10"],
    ["a first position beyond 2^53", "bytes=99999999999999999999-"],
  ].map(([what, range]) => ({
    name: `Range: ${what} (${range}) is ignored: 200 with the whole file`,
    send: get((t: Target) => `/v1/files/${t.refs[1]!.id}/content`, { range: range! }),
    status: 200,
    ok: async (answer: Answer, t: Target) => {
      expect(answer.headers["content-range"]).toBeUndefined();
      expect(Number(answer.headers["content-length"])).toBe(t.refs[1]!.data.length);
      expect(sha256(answer.body)).toBe(sha256(t.refs[1]!.data));
    },
  })),
  {
    name: "If-Range: garbage with a valid Range: 200 with the whole file",
    send: get((t: Target) => `/v1/files/${t.refs[1]!.id}/content`, { range: "bytes=0-9", "if-range": "garbage" }),
    status: 200,
    ok: async (answer: Answer, t: Target) => {
      expect(answer.headers["content-range"]).toBeUndefined();
      expect(sha256(answer.body)).toBe(sha256(t.refs[1]!.data));
    },
  },
  // Syntactically valid but unsatisfiable (§14.1.1: a zero suffix-length, or first-pos ≥ length): 416.
  ...[
    ["a zero-length suffix", "bytes=-0"],
    ["first position at the end", "bytes=100000-"],
    ["first position past the end", "bytes=100001-100005"],
  ].map(([what, range]) => ({
    name: `Range: ${what} (${range}) is 416 with Content-Range bytes */size`,
    send: get((t: Target) => `/v1/files/${t.refs[1]!.id}/content`, { range: range! }),
    status: 416,
    param: "range",
    message: /is outside the file \(100000 bytes\)/,
  })),
];

const pendingPath = (suffix: string) => (t: Target) => `/v1/uploads/${t.uploadId}${suffix}`;
const postTo = (path: (t: Target) => string, req: (t: Target) => { headers: Record<string, string>; body: Buffer | string }) => (t: Target) =>
  post(path(t), req(t))(t);
const raw = (body: string | Buffer, contentType: string | null = "application/json") => ({
  headers: contentType === null ? ({} as Record<string, string>) : { "content-type": contentType },
  body,
});
const validCreate = { filename: "u.bin", purpose: "batch", bytes: 1000, mime_type: "text/plain" };

const JSON_ROWS: RestRow[] = [
  ...(["/v1/uploads", "/complete"] as const).flatMap((where) => {
    const path = where === "/v1/uploads" ? () => "/v1/uploads" : pendingPath("/complete");
    const valid = (t: Target) => JSON.stringify(where === "/v1/uploads" ? validCreate : { part_ids: [t.partId] });
    return [
      ...[
        ["not JSON", "this is not json", /not valid JSON/],
        ["empty", "", /not valid JSON/],
        ["truncated JSON", '{"part_ids": ["', /not valid JSON/],
        ["a byte-order mark before the JSON", "\ufeff{}", /not valid JSON/],
        ["JSON with a trailing comma", '{"a": 1,}', /not valid JSON/],
        ["a JSON array", "[]", /must be a JSON object/],
        ["JSON null", "null", /must be a JSON object/],
        ["a JSON string", '"{}"', /must be a JSON object/],
        ["a JSON number", "42", /must be a JSON object/],
      ].map(([what, body, message]) => ({
        name: `${where}: the body is ${what}`,
        send: postTo(path, () => raw(body as string)),
        status: 400,
        param: null,
        message: message as RegExp,
      })),
      ...[
        ["text/plain", "'text/plain'"],
        ["application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"],
        [MULTIPART, "'multipart/form-data'"],
        ["application/jsonx", "'application/jsonx'"],
        [null, "none"],
      ].map(([contentType, shown]) => ({
        name: `${where}: valid JSON sent as ${contentType ?? "no content type"}`,
        send: postTo(path, (t) => raw(valid(t), contentType)),
        status: 415,
        param: null,
        message: new RegExp(`Expected a JSON body .*got ${shown!.replace(/[/+]/g, "\\$&")}`),
      })),
    ];
  }),
];

/** Last, so that a server that falls over on them does not take the rest of the catalogue with it. */
const OVERSIZE_JSON_ROWS: RestRow[] = (["/v1/uploads", "/complete"] as const).map((where) => ({
  name: `${where}: a JSON body larger than 1 MiB`,
  send: postTo(where === "/v1/uploads" ? () => "/v1/uploads" : pendingPath("/complete"), () => raw(`{"pad": "${"x".repeat(MiB)}"}`)),
  status: 413,
  param: null,
  message: /larger than 1048576 bytes/,
}));

const CREATE_UPLOAD_ROWS: RestRow[] = (
  [
    ["filename missing", { filename: undefined }, "filename", /filename is required/],
    ["filename not a string", { filename: 5 }, "filename", /filename must be a string/],
    ["filename empty", { filename: "" }, "filename", /filename is required/],
    ["purpose unknown", { purpose: "nope" }, "purpose", /not a known purpose/],
    ["purpose empty", { purpose: "" }, "purpose", /purpose is required/],
    ["purpose missing", { purpose: undefined }, "purpose", /purpose is required/],
    ["bytes a string", { bytes: "abc" }, "bytes", /bytes must be an integer/],
    ["bytes a numeric string", { bytes: "1000" }, "bytes", /bytes must be an integer/],
    ["bytes 0", { bytes: 0 }, "bytes", /bytes must be a positive integer/],
    ["bytes -1", { bytes: -1 }, "bytes", /bytes must be a positive integer/],
    ["bytes 1.5", { bytes: 1.5 }, "bytes", /bytes must be an integer/],
    ["bytes 2^53", { bytes: 2 ** 53 }, "bytes", /bytes must be an integer/],
    ["mime_type a number", { mime_type: 5 }, "mime_type", /mime_type must be a string/],
    ["mime_type not a media type", { mime_type: "not a type" }, "mime_type", /mime_type is not a valid media type/],
    ["expires_after a string", { expires_after: "3600" }, "expires_after", /expires_after must be an object/],
    ["expires_after an array", { expires_after: [3600] }, "expires_after", /expires_after must be an object/],
    ["expires_after.seconds not a number", { expires_after: { anchor: "created_at", seconds: "abc" } }, "expires_after.seconds", /must be an integer/],
    ["expires_after.seconds 3599", { expires_after: { anchor: "created_at", seconds: 3599 } }, "expires_after.seconds", /between 3600 and 2592000/],
    ["expires_after.seconds 2592001", { expires_after: { anchor: "created_at", seconds: 2592001 } }, "expires_after.seconds", /between 3600 and 2592000/],
    ["expires_after.seconds negative", { expires_after: { anchor: "created_at", seconds: -3600 } }, "expires_after.seconds", /between 3600 and 2592000/],
    ["expires_after.anchor unknown", { expires_after: { anchor: "last_active_at", seconds: 3600 } }, "expires_after.anchor", /must be 'created_at'/],
  ] as const
).map(([what, change, param, message]) => ({
  name: `POST /v1/uploads: ${what}`,
  send: post("/v1/uploads", json({ ...validCreate, ...change })),
  status: 400,
  param,
  message,
}));
CREATE_UPLOAD_ROWS.push({
  name: "POST /v1/uploads: bytes over max_upload_bytes",
  send: post("/v1/uploads", json({ ...validCreate, bytes: MAX_UPLOAD + 1 })),
  status: 413,
  param: "bytes",
  message: /larger than the upload limit of 2097152 bytes/,
});

const COMPLETE_ROWS: RestRow[] = [
  ...(
    [
      ["part_ids missing", () => ({}), "part_ids", /part_ids must be an array/],
      ["part_ids a string", (t: Target) => ({ part_ids: t.partId }), "part_ids", /part_ids must be an array/],
      ["part_ids with a number", () => ({ part_ids: [1] }), "part_ids", /part_ids must be an array/],
      ["part_ids empty", () => ({ part_ids: [] }), "part_ids", /at least one part/],
      ["part_ids ../x", () => ({ part_ids: ["../x"] }), "part_ids", /is not a part id/],
      ["part_ids unknown", () => ({ part_ids: [UNKNOWN_PART] }), "part_ids", /is not a part of upload/],
      ["part_ids listed twice", (t: Target) => ({ part_ids: [t.partId, t.partId] }), "part_ids", /listed twice/],
      ["md5 a number", (t: Target) => ({ part_ids: [t.partId], md5: 5 }), "md5", /md5 must be a string/],
      ["md5 not hex", (t: Target) => ({ part_ids: [t.partId], md5: "zz" }), "md5", /md5/],
      ["md5 of other bytes", (t: Target) => ({ part_ids: [t.partId], md5: createHash("md5").update("other").digest("hex") }), "md5", /MD5 is [0-9a-f]{32}, not the declared/],
    ] as const
  ).map(([what, body, param, message]) => ({
    name: `complete: ${what}`,
    send: postTo(pendingPath("/complete"), (t) => json(body(t))),
    status: 400,
    param,
    message,
  })),
];

const PART_ROWS: RestRow[] = [
  { name: "add part: no data part", parts: [field("purpose", "x")], status: 400, param: "data", message: /no 'data' part/ },
  {
    name: "add part: data twice",
    parts: [
      { name: "data", filename: "a", data: randomBytes(100) },
      { name: "data", filename: "b", data: randomBytes(100) },
    ],
    status: 400,
    param: "data",
    message: /'data' was given more than once/,
  },
  { name: "add part: data as a text field", parts: [field("data", "text")], status: 400, param: "data", message: /must be sent as a file part/ },
  { name: "add part: an empty data part", parts: [{ name: "data", filename: "a", data: "" }], status: 400, param: "data", message: /The part is empty/ },
  { name: "add part: sent as 'file'", parts: [filePart()], status: 400, param: "file", message: /send the file as 'data'/ },
  {
    name: "add part: larger than the upload's declared bytes",
    parts: [{ name: "data", filename: "a", data: randomBytes(PENDING_BYTES + 1) }],
    status: 413,
    param: "data",
    message: /The part is larger than the limit of 1000 bytes/,
  },
].map(({ parts, ...row }) => ({ ...row, send: postTo(pendingPath("/parts"), () => multipart(form(parts))) }));
PART_ROWS.push(
  {
    name: "add part: not multipart",
    send: postTo(pendingPath("/parts"), () => raw("data", "application/octet-stream")),
    status: 415,
    param: null,
    message: /Expected a multipart\/form-data body/,
  },
  {
    name: "add part: cut off inside the data",
    send: postTo(pendingPath("/parts"), () => multipart(form([{ name: "data", filename: "a", data: randomBytes(500) }], { close: false }).subarray(0, 300))),
    status: 400,
    param: null,
    message: /Malformed multipart\/form-data/,
  },
);

const SIZE_ROWS: RestRow[] = [
  {
    name: "an empty file (0 bytes) is accepted: 200 with bytes 0, readable, 416 for any range",
    send: postFiles([field("purpose", "batch"), filePart(Buffer.alloc(0), "empty.txt")]),
    status: 200,
    ok: async (answer, t) => {
      const file = JSON.parse(answer.body.toString()) as { id: string; bytes: number; filename: string };
      expect(file).toMatchObject({ bytes: 0, filename: "empty.txt" });
      expect(await listAllKeys(t.bucket)).toContain(file.id);
      const content = await send(t.server.port, "GET", `/v1/files/${file.id}/content`);
      expect(content.status).toBe(200);
      expect(content.headers["content-length"]).toBe("0");
      expect(content.body.length).toBe(0);
      const ranged = await send(t.server.port, "GET", `/v1/files/${file.id}/content`, { range: "bytes=0-" });
      expectError(ranged, 416, "range");
      expect(ranged.headers["content-range"]).toBe("bytes */0");
      expect((await send(t.server.port, "DELETE", `/v1/files/${file.id}`)).status).toBe(200);
    },
  },
  {
    name: "a file of exactly max_file_bytes is accepted",
    send: postFiles([field("purpose", "batch"), filePart(randomBytes(MAX_FILE), "max.bin")]),
    status: 200,
    ok: async (answer, t) => {
      const file = JSON.parse(answer.body.toString()) as { id: string; bytes: number };
      expect(file.bytes).toBe(MAX_FILE);
      expect((await send(t.server.port, "DELETE", `/v1/files/${file.id}`)).status).toBe(200);
    },
  },
  {
    name: "a file one byte over max_file_bytes is 413",
    send: postFiles([field("purpose", "batch"), filePart(randomBytes(MAX_FILE + 1), "over.bin")]),
    status: 413,
    param: "file",
    message: /larger than the limit of 1048576 bytes/,
  },
  {
    name: "a file over max_file_bytes, purpose after it, is 413",
    send: postFiles([filePart(randomBytes(2 * MAX_FILE), "over.bin"), field("purpose", "batch")]),
    status: 413,
    param: "file",
    message: /larger than the limit of 1048576 bytes/,
  },
];

/** Bob against Alice's file, cursor and upload: all as unknown as a missing one. */
const PRINCIPAL_ROWS: RestRow[] = [
  {
    name: "after: another principal's file id",
    on: "authed",
    send: (t) => send(t.server.port, "GET", `/v1/files?after=${t.refs[0]!.id}`, BOB),
    status: 400,
    param: "after",
    message: /after: no such file/,
  },
  ...(
    [
      ["retrieve", "GET", ""],
      ["content", "GET", "/content"],
      ["delete", "DELETE", ""],
    ] as const
  ).map(([op, method, suffix]) => ({
    name: `another principal's file: ${op}`,
    on: "authed" as const,
    send: (t: Target) => send(t.server.port, method, `/v1/files/${t.refs[0]!.id}${suffix}`, BOB),
    status: 404,
    param: "file_id",
    message: /^No such file: 'file-/,
  })),
  ...(
    [
      ["retrieve", "GET", "", undefined],
      ["cancel", "POST", "/cancel", raw("")],
      ["complete", "POST", "/complete", undefined],
      ["add a part", "POST", "/parts", multipart(form([{ name: "data", filename: "a", data: randomBytes(10) }]))],
    ] as const
  ).map(([op, method, suffix, body]) => ({
    name: `another principal's upload: ${op}`,
    on: "authed" as const,
    send: (t: Target) => {
      const req = body ?? (op === "complete" ? json({ part_ids: [t.partId] }) : { headers: {}, body: undefined });
      return send(t.server.port, method, `/v1/uploads/${t.uploadId}${suffix}`, { ...BOB, ...req.headers }, req.body);
    },
    status: 404,
    param: "upload_id",
    message: /^No such upload: 'upload_/,
  })),
];

describe.each([
  ["multipart forms", MULTIPART_ROWS],
  ["purpose", PURPOSE_ROWS],
  ["expires_after", EXPIRES_ROWS],
  ["list parameters", LIST_ROWS],
  ["file ids", ID_ROWS],
  ["dot segments", DOT_SEGMENT_ROWS],
  ["upload ids", UPLOAD_ID_ROWS],
  ["Range", RANGE_ROWS],
  ["JSON bodies", JSON_ROWS],
  ["creating an upload", CREATE_UPLOAD_ROWS],
  ["completing an upload", COMPLETE_ROWS],
  ["upload parts", PART_ROWS],
  ["sizes", SIZE_ROWS],
  ["principals", PRINCIPAL_ROWS],
] as const)("REST: %s", (_group, rows) => restRows(rows));

function restRows(rows: readonly RestRow[]): void {
  it.each(rows as RestRow[])("$name", async (row) => {
    const t = row.on === "authed" ? authed : main;
    const before = await state(t);
    expectBaseline(before, t);
    const answer = await row.send(t).catch((err: Error) => {
      const exit = t.server.child.exitCode ?? t.server.child.signalCode;
      throw new Error(`${err.message}; server exit: ${exit}\n--- server output ---\n${t.server.output.slice(-12).join("\n")}`);
    });
    if (row.ok) {
      expect(answer.status, answer.body.toString().slice(0, 500)).toBe(row.status);
      await row.ok(answer, t);
    } else {
      expectError(answer, row.status, row.param ?? null, row.message);
    }
    expect(await state(t)).toEqual(before);
  });
}

// ---------------------------------------------------------------------------------------------------
// gRPC rows

type Rpc = Client<typeof FilesService>;

function rpcFor(t: Target): Rpc {
  const headers = t === authed ? BOB : t.auth;
  const auth: Interceptor = (next) => (req) => {
    for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
    return next(req);
  };
  return createClient(FilesService, createGrpcTransport({ baseUrl: t.server.baseUrl, interceptors: [auth] }));
}

type Message = UploadFileRequest["payload"];
const metadata = (init: Record<string, unknown> = {}): Message =>
  ({ case: "metadata", value: { filename: "x.bin", purpose: FilePurpose.BATCH, ...init } }) as Message;
const chunk = (data: Buffer | string): Message => ({ case: "chunk", value: Buffer.from(data) });

async function* stream(messages: Message[]): AsyncGenerator<UploadFileRequest> {
  for (const payload of messages) yield create(UploadFileRequestSchema, { payload } as never);
}

/** UploadFile over @grpc/grpc-js, writing exactly the given messages (the helper client always sends metadata first). */
function grpcJsUpload(t: Target, messages: Message[]): Promise<unknown> {
  const client = new grpc.Client(`127.0.0.1:${t.server.port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.makeClientStreamRequest(
      `/${FilesService.typeName}/UploadFile`,
      (m: UploadFileRequest) => Buffer.from(toBinary(UploadFileRequestSchema, m)),
      (b: Buffer) => fromBinary(UploadFileResponseSchema, b),
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res);
      },
    );
    for (const payload of messages) call.write(create(UploadFileRequestSchema, { payload } as never));
    call.end();
  });
}

interface GrpcRow {
  name: string;
  on?: "authed";
  call: (rpc: Rpc, t: Target, grpcJs: FilesTestClient) => Promise<unknown>;
  code: Code;
  /** Must name the field at fault: gRPC carries no param. */
  message: RegExp;
}

const upload = (messages: Message[]) => (rpc: Rpc) => rpc.uploadFile(stream(messages));
const one = (data: Buffer | string, init: Record<string, unknown> = {}) => upload([metadata(init), chunk(data)]);
const BAD_RPC_IDS: [string, string][] = [
  ["../x", "../x"],
  ["file-../../etc", "file-../../etc"],
  ["a 10 KB id", TEN_KB_ID],
  ["file-%2F..%2Fx", "file-%2F..%2Fx"],
  ["file-/../x", "file-/../x"],
  ["empty", ""],
  ["an unknown well-formed id", UNKNOWN_FILE],
];
const quoted = (id: string) => new RegExp(`No such file: '${id.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}'`);

const GRPC_ROWS: GrpcRow[] = [
  { name: "UploadFile: a chunk before the metadata", call: upload([chunk("early"), metadata()]), code: Code.InvalidArgument, message: /first UploadFileRequest must carry metadata/ },
  {
    name: "UploadFile: a chunk before the metadata (@grpc/grpc-js)",
    call: (_rpc, t) => grpcJsUpload(t, [chunk("early"), metadata()]),
    code: Code.InvalidArgument,
    message: /first UploadFileRequest must carry metadata/,
  },
  {
    name: "UploadFile: a second metadata message",
    call: upload([metadata(), chunk(randomBytes(100_000)), metadata({ filename: "b" }), chunk("x")]),
    code: Code.InvalidArgument,
    message: /after the first UploadFileRequest, every message must carry a chunk/,
  },
  {
    name: "UploadFile: a second metadata message (@grpc/grpc-js)",
    call: (_rpc, t) => grpcJsUpload(t, [metadata(), chunk("x"), metadata({ filename: "b" })]),
    code: Code.InvalidArgument,
    message: /every message must carry a chunk/,
  },
  { name: "UploadFile: no messages at all", call: upload([]), code: Code.InvalidArgument, message: /ended before its metadata message/ },
  { name: "UploadFile: declared size_bytes larger than sent", call: one("four", { sizeBytes: 5n }), code: Code.InvalidArgument, message: /size_bytes/ },
  { name: "UploadFile: declared size_bytes smaller than sent", call: one("four", { sizeBytes: 3n }), code: Code.InvalidArgument, message: /size_bytes/ },
  { name: "UploadFile: declared size_bytes negative", call: one("four", { sizeBytes: -1n }), code: Code.InvalidArgument, message: /size_bytes must be a non-negative integer/ },
  { name: "UploadFile: declared sha256 of other bytes", call: one(randomBytes(1000), { sha256: sha256(Buffer.from("other")) }), code: Code.InvalidArgument, message: /SHA-256 is [0-9a-f]{64}, not the declared/ },
  { name: "UploadFile: declared sha256 not hex", call: one("x", { sha256: "xyz" }), code: Code.InvalidArgument, message: /sha256 must be 64 hex characters/ },
  { name: "UploadFile: purpose unspecified", call: one("x", { purpose: FilePurpose.UNSPECIFIED }), code: Code.InvalidArgument, message: /purpose is required/ },
  { name: "UploadFile: purpose unknown (42)", call: one("x", { purpose: 42 }), code: Code.InvalidArgument, message: /purpose 'FilePurpose\(42\)' is not a known purpose/ },
  { name: "UploadFile: an output purpose", call: one("x", { purpose: FilePurpose.BATCH_OUTPUT }), code: Code.InvalidArgument, message: /purpose 'batch_output' is produced by the server/ },
  ...(
    [
      ["0", 0n],
      ["3599", 3599n],
      ["2592001", 2_592_001n],
      ["-3600", -3600n],
      ["2^63-1", 2n ** 63n - 1n],
    ] as const
  ).map(([what, seconds]) => ({
    name: `UploadFile: expires_after.seconds ${what}`,
    call: one("x", { expiresAfter: { anchor: ExpiresAfterAnchor.CREATED_AT, seconds } }),
    code: Code.InvalidArgument,
    message: /expires_after.seconds must be an integer between 3600 and 2592000/,
  })),
  {
    name: "UploadFile: expires_after.anchor unknown (7)",
    call: one("x", { expiresAfter: { anchor: 7, seconds: 3600n } }),
    code: Code.InvalidArgument,
    message: /expires_after.anchor must be CREATED_AT/,
  },
  {
    name: "UploadFile: one byte over max_file_bytes, streamed",
    call: upload([metadata(), chunk(randomBytes(MAX_FILE / 2)), chunk(randomBytes(MAX_FILE / 2 + 1))]),
    code: Code.ResourceExhausted,
    message: /The file is larger than the limit of 1048576 bytes/,
  },
  {
    name: "UploadFile: size_bytes over max_file_bytes, declared",
    call: upload([metadata({ sizeBytes: BigInt(MAX_FILE + 1) })]),
    code: Code.ResourceExhausted,
    message: /size_bytes 1048577 is larger than the limit/,
  },
  ...["0", "-1", "10001"].map((limit) => ({
    name: `ListFiles: limit ${limit}`,
    call: (rpc: Rpc) => rpc.listFiles({ limit: Number(limit) }),
    code: Code.InvalidArgument,
    message: /limit must be an integer between 1 and 10000/,
  })),
  ...["0", "-1", "10001"].map((limit) => ({
    name: `ListFiles: limit ${limit} (@grpc/grpc-js)`,
    call: (_rpc: Rpc, _t: Target, js: FilesTestClient) => js.list({ limit: Number(limit) }),
    code: Code.InvalidArgument,
    message: /limit must be an integer between 1 and 10000/,
  })),
  ...[UNKNOWN_FILE, "../x", TEN_KB_ID].map((after) => ({
    name: `ListFiles: after ${after.length > 64 ? "a 10 KB id" : after}`,
    call: (rpc: Rpc) => rpc.listFiles({ after }),
    code: Code.InvalidArgument,
    message: /after: no such file/,
  })),
  { name: "ListFiles: purpose unknown (42)", call: (rpc) => rpc.listFiles({ purpose: 42 as FilePurpose }), code: Code.InvalidArgument, message: /purpose 'FilePurpose\(42\)' is not a known purpose/ },
  ...BAD_RPC_IDS.flatMap(([what, id]): GrpcRow[] => [
    { name: `GetFile: id ${what}`, call: (rpc) => rpc.getFile({ fileId: id }), code: Code.NotFound, message: quoted(id) },
    { name: `DeleteFile: id ${what}`, call: (rpc) => rpc.deleteFile({ fileId: id }), code: Code.NotFound, message: quoted(id) },
    {
      name: `DownloadFile: id ${what}`,
      call: async (rpc) => {
        for await (const _ of rpc.downloadFile({ fileId: id })) void _;
      },
      code: Code.NotFound,
      message: quoted(id),
    },
    { name: `GetFile: id ${what} (@grpc/grpc-js)`, call: (_r, _t, js) => js.get(id), code: Code.NotFound, message: quoted(id) },
    { name: `DeleteFile: id ${what} (@grpc/grpc-js)`, call: (_r, _t, js) => js.delete(id), code: Code.NotFound, message: quoted(id) },
    { name: `DownloadFile: id ${what} (@grpc/grpc-js)`, call: (_r, _t, js) => js.download({ fileId: id }), code: Code.NotFound, message: quoted(id) },
  ]),
  ...(
    [
      ["offset -1", { offset: -1n }, Code.InvalidArgument, /offset must be a non-negative integer/],
      ["offset past the end", { offset: 100_001n }, Code.OutOfRange, /offset 100001 is past the end of the file \(100000 bytes\)/],
      ["length -1", { offset: 0n, length: -1n }, Code.InvalidArgument, /length must be a non-negative integer/],
    ] as const
  ).map(([what, range, code, message]) => ({
    name: `DownloadFile: ${what}`,
    call: async (rpc: Rpc, t: Target) => {
      for await (const _ of rpc.downloadFile({ fileId: t.refs[1]!.id, ...range })) void _;
    },
    code,
    message,
  })),
  ...(["../x", `upload_${"a".repeat(10 * 1024)}`, UNKNOWN_FILE] as const).flatMap((id): GrpcRow[] => {
    const what = id.length > 64 ? "a 10 KB id" : id;
    const message = /No such upload: '/;
    return [
      { name: `GetUpload: id ${what}`, call: (rpc) => rpc.getUpload({ uploadId: id }), code: Code.NotFound, message },
      { name: `CancelUpload: id ${what}`, call: (rpc) => rpc.cancelUpload({ uploadId: id }), code: Code.NotFound, message },
      { name: `AddUploadPart: id ${what}`, call: (rpc) => rpc.addUploadPart({ uploadId: id, data: randomBytes(100) }), code: Code.NotFound, message },
      { name: `CompleteUpload: id ${what}`, call: (rpc, t) => rpc.completeUpload({ uploadId: id, partIds: [t.partId] }), code: Code.NotFound, message },
    ];
  }),
  { name: "CreateUpload: bytes 0", call: (rpc) => rpc.createUpload({ filename: "u", purpose: FilePurpose.BATCH, bytes: 0n }), code: Code.InvalidArgument, message: /bytes must be a positive integer/ },
  {
    name: "CreateUpload: bytes over max_upload_bytes",
    call: (rpc) => rpc.createUpload({ filename: "u", purpose: FilePurpose.BATCH, bytes: BigInt(MAX_UPLOAD + 1) }),
    code: Code.ResourceExhausted,
    message: /bytes 2097153 is larger than the upload limit/,
  },
  {
    name: "CreateUpload: purpose unspecified",
    call: (rpc) => rpc.createUpload({ filename: "u", bytes: 10n }),
    code: Code.InvalidArgument,
    message: /purpose is required/,
  },
  {
    name: "CreateUpload: expires_after.seconds 60",
    call: (rpc) => rpc.createUpload({ filename: "u", purpose: FilePurpose.BATCH, bytes: 10n, expiresAfter: { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: 60n } }),
    code: Code.InvalidArgument,
    message: /expires_after.seconds must be an integer between 3600 and 2592000/,
  },
  { name: "CompleteUpload: no part ids", call: (rpc, t) => rpc.completeUpload({ uploadId: t.uploadId, partIds: [] }), code: Code.InvalidArgument, message: /part_ids must list at least one part/ },
  { name: "CompleteUpload: md5 not hex", call: (rpc, t) => rpc.completeUpload({ uploadId: t.uploadId, partIds: [t.partId], md5: "zz" }), code: Code.InvalidArgument, message: /md5/ },
  {
    name: "CompleteUpload: md5 of other bytes",
    call: (rpc, t) => rpc.completeUpload({ uploadId: t.uploadId, partIds: [t.partId], md5: createHash("md5").update("other").digest("hex") }),
    code: Code.InvalidArgument,
    message: /MD5 is [0-9a-f]{32}, not the declared/,
  },
  { name: "AddUploadPart: empty data", call: (rpc, t) => rpc.addUploadPart({ uploadId: t.uploadId, data: new Uint8Array() }), code: Code.InvalidArgument, message: /part is empty/ },
  {
    name: "AddUploadPart: larger than the upload's declared bytes",
    call: (rpc, t) => rpc.addUploadPart({ uploadId: t.uploadId, data: randomBytes(PENDING_BYTES + 1) }),
    code: Code.ResourceExhausted,
    message: /The part is larger than the limit of 1000 bytes/,
  },
  // Bob, against Alice's file and upload.
  { name: "ListFiles: after another principal's file", on: "authed", call: (rpc, t) => rpc.listFiles({ after: t.refs[0]!.id }), code: Code.InvalidArgument, message: /after: no such file/ },
  { name: "GetFile: another principal's file", on: "authed", call: (rpc, t) => rpc.getFile({ fileId: t.refs[0]!.id }), code: Code.NotFound, message: /No such file: 'file-/ },
  { name: "DeleteFile: another principal's file", on: "authed", call: (rpc, t) => rpc.deleteFile({ fileId: t.refs[0]!.id }), code: Code.NotFound, message: /No such file: 'file-/ },
  {
    name: "DownloadFile: another principal's file",
    on: "authed",
    call: async (rpc, t) => {
      for await (const _ of rpc.downloadFile({ fileId: t.refs[0]!.id })) void _;
    },
    code: Code.NotFound,
    message: /No such file: 'file-/,
  },
  { name: "GetUpload: another principal's upload", on: "authed", call: (rpc, t) => rpc.getUpload({ uploadId: t.uploadId }), code: Code.NotFound, message: /No such upload: 'upload_/ },
  { name: "CancelUpload: another principal's upload", on: "authed", call: (rpc, t) => rpc.cancelUpload({ uploadId: t.uploadId }), code: Code.NotFound, message: /No such upload: 'upload_/ },
  {
    name: "AddUploadPart: another principal's upload",
    on: "authed",
    call: (rpc, t) => rpc.addUploadPart({ uploadId: t.uploadId, data: randomBytes(10) }),
    code: Code.NotFound,
    message: /No such upload: 'upload_/,
  },
  {
    name: "CompleteUpload: another principal's upload",
    on: "authed",
    call: (rpc, t) => rpc.completeUpload({ uploadId: t.uploadId, partIds: [t.partId] }),
    code: Code.NotFound,
    message: /No such upload: 'upload_/,
  },
];

describe("gRPC", () => {
  const clients: FilesTestClient[] = [];
  afterAll(() => clients.forEach((c) => c.close()));
  const grpcJsFor = (t: Target) => {
    const client = grpcJsClient(t.server.baseUrl);
    clients.push(client);
    return client;
  };

  it.each(GRPC_ROWS)("$name", async (row) => {
    const t = row.on === "authed" ? authed : main;
    const before = await state(t);
    expectBaseline(before, t);
    const err = await rejection(row.call(rpcFor(t), t, grpcJsFor(t)));
    expect(err.code, err.message.slice(0, 500)).toBe(row.code);
    expect(err.message).toMatch(row.message);
    expect(await state(t)).toEqual(before);
  });

  it("UploadFile: an empty upload (metadata only) is a 0-byte file, over both clients", async () => {
    const before = await state(main);
    const uploads = [
      async () => (await rpcFor(main).uploadFile(stream([metadata({ filename: "empty.bin" })]))).file!,
      () => grpcJsFor(main).upload({ filename: "empty.bin", purpose: FilePurpose.BATCH }, []),
    ];
    for (const uploadEmpty of uploads) {
      const file = await uploadEmpty();
      expect(file.bytes).toBe(0n);
      expect(file.sha256).toBe(sha256(Buffer.alloc(0)));
      expect(await listAllKeys(main.bucket)).toContain(file.id);
      const js = grpcJsFor(main);
      const download = await js.download({ fileId: file.id });
      expect(download.data.length).toBe(0);
      expect(download.file?.id).toBe(file.id);
      await js.delete(file.id);
    }
    expect(await state(main)).toEqual(before);
  });

  // Connect's JSON codec is the one way to send a value protobuf's binary wire cannot carry.
  it.each([
    ["ListFiles", { limit: "abc" }, /limit/],
    ["ListFiles", { limit: 1.5 }, /limit/],
    ["CreateUpload", { filename: "u", purpose: "FILE_PURPOSE_BATCH", bytes: "10", expiresAfter: { anchor: "EXPIRES_AFTER_ANCHOR_CREATED_AT", seconds: "abc" } }, /seconds/],
    ["CreateUpload", { filename: "u", purpose: "FILE_PURPOSE_NOPE", bytes: "10" }, /purpose/],
  ] as const)("Connect JSON %s %j is invalid_argument naming the field", async (method, body, message) => {
    const before = await state(main);
    const res = await fetch(`${main.server.baseUrl}/${FilesService.typeName}/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.status, text).toBe(400);
    const answer = JSON.parse(text) as { code: string; message: string };
    expect(answer.code, text).toBe("invalid_argument");
    expect(answer.message).toMatch(message);
    expect(await state(main)).toEqual(before);
  });
});

describe("REST: JSON bodies over the 1 MiB limit", () => restRows(OVERSIZE_JSON_ROWS));
