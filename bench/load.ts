/**
 * The load test of issue #5: `npm run load -- [options]` (`--help` lists them).
 *
 * For each metadata store (SQLite, PostgreSQL, or both), on loopback: a fresh bucket on moto (started
 * here, or S3_ENDPOINT), PostgreSQL when needed (started here), and the built server as a child process.
 *  1. small: N workers for D seconds, each looping over a weighted mix of small uploads (REST
 *     multipart by hand, the openai SDK, gRPC client streaming), lists, retrieves, downloads of its
 *     own files (SHA-256 of every byte) and deletes of its own files (only ones already verified);
 *  2. check: the listing must hold exactly the files still owned; every file never downloaded is
 *     downloaded and verified; then all are deleted and the listing must be empty;
 *  3. large: K concurrent uploads of S bytes each (REST and gRPC alternately), streamed from a
 *     generator, then K concurrent downloads hashed as they arrive, then deletes; finally the bucket
 *     must hold no object and no unfinished multipart upload.
 * Reports per operation: count, ops/s, p50/p99/max latency, errors, bytes moved and verified; the
 * server's idle RSS and peak RSS (VmHWM); the CPU used by the client, the server and moto (to show
 * which was the limit); anything abnormal in the server's log. Exit code 0 only
 * with no error at all; 1 with errors (the first ones listed); 2 on bad usage or set-up failure;
 * 3 when the hard deadline (--timeout-min) or a signal stopped it. Everything started is stopped
 * and every temp dir removed, on every path out.
 */
import { createCipheriv, createHash, randomBytes, type Hash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type http2 from "node:http2";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import OpenAI, { toFile } from "openai";
import { stringify } from "yaml";
import { FilePurpose, FilesService, UploadFileRequestSchema, type UploadFileRequest } from "../gen/ts/files/v1/files_pb.js";
import { guardChildProcess, startMoto, waitForExit } from "../test/support/moto.js";
import { startPostgres, type PostgresServer } from "../test/support/postgres.js";
import { processMemory } from "../test/support/proc-memory.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../test/support/server-process.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const log = (msg: string): void => console.log(`[load] ${msg}`);

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

type Metadata = "sqlite" | "postgres";

interface Options {
  metadata: Metadata[];
  durationSeconds: number;
  concurrency: number;
  largeCount: number;
  largeBytes: number;
  json?: string;
  timeoutMinutes: number;
}

const USAGE = `npm run load -- [options]

  --metadata sqlite|postgres|both   metadata store(s) to run against (default both)
  --duration SECONDS                length of the small-file phase (default 60)
  --concurrency N                   workers in the small-file phase (default 200)
  --large-count N                   concurrent large uploads, then downloads (default 8; 0 skips)
  --large-size SIZE                 size of each large file, e.g. 256MiB, 1GiB (default 256MiB)
  --json FILE                       also write the results as JSON
  --timeout-min MINUTES             hard deadline for the whole run (default: from the other options,
                                    39 min for the defaults; a safety net against hangs, not a target)

S3: moto is started unless S3_ENDPOINT is set (credentials AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
else "test"). PostgreSQL: a throw-away cluster is started (initdb/pg_ctl on PATH or PG_BIN_DIR).
Exit code: 0 no error, 1 errors (listed), 2 bad usage or set-up failure, 3 deadline or signal.`;

function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib)?$/i.exec(text.trim());
  const units: Record<string, number> = { b: 1, kib: KiB, mib: MiB, gib: 1024 * MiB };
  if (!m) throw new Error(`not a size: '${text}' (e.g. 32MiB, 1GiB)`);
  const bytes = Math.round(Number(m[1]) * units[(m[2] ?? "b").toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`size out of range: '${text}'`);
  return bytes;
}

function integer(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}, got '${text}'`);
  return n;
}

function parseOptions(argv: string[]): Options | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      metadata: { type: "string", default: "both" },
      duration: { type: "string", default: "60" },
      concurrency: { type: "string", default: "200" },
      "large-count": { type: "string", default: "8" },
      "large-size": { type: "string", default: "256MiB" },
      json: { type: "string" },
      "timeout-min": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const metadata = values.metadata === "both" ? (["sqlite", "postgres"] as const) : [values.metadata];
  for (const m of metadata) if (m !== "sqlite" && m !== "postgres") throw new Error(`--metadata must be sqlite, postgres or both, got '${m}'`);
  const options = {
    metadata: [...metadata] as Metadata[],
    durationSeconds: integer(values.duration, "--duration", 1),
    concurrency: integer(values.concurrency, "--concurrency", 1),
    largeCount: integer(values["large-count"], "--large-count", 0),
    largeBytes: parseSize(values["large-size"]),
    json: values.json,
  };
  // Per store: start-up, the mix, the check (at most concurrency × MAX_OWN files), and two waves of large transfers.
  const perStore = 60 + options.durationSeconds + 240 + (options.largeCount > 0 ? 2 * largeTimeoutMs(options.largeCount, options.largeBytes) / 1000 : 0);
  const computed = Math.ceil((options.metadata.length * perStore + 60) / 60);
  return { ...options, timeoutMinutes: values["timeout-min"] === undefined ? computed : integer(values["timeout-min"], "--timeout-min", 1) };
}

/** The time one wave of large transfers may take: generous, they share loopback, moto and the CPUs. */
function largeTimeoutMs(count: number, bytes: number): number {
  return 120_000 + Math.ceil((count * bytes) / (8 * MiB)) * 1000;
}

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------

interface ErrorRecord {
  phase: string;
  op: string;
  /** Seconds since the phase started. */
  at: number;
  message: string;
}

/** What one operation moved: bytes sent or received, and how many of them were checked by SHA-256. */
interface Moved {
  bytes: number;
  verified: number;
}

class OpStats {
  count = 0;
  errors = 0;
  bytes = 0;
  verified = 0;
  readonly latencies: number[] = [];
}

const MAX_KEPT_ERRORS = 50;

/** One phase's operations; errors of every phase go to one shared list. */
class Phase {
  readonly ops = new Map<string, OpStats>();
  private readonly started = performance.now();
  private ended: number | undefined;

  constructor(
    readonly name: string,
    private readonly errors: { total: number; kept: ErrorRecord[] },
  ) {}

  private stats(op: string): OpStats {
    let s = this.ops.get(op);
    if (!s) this.ops.set(op, (s = new OpStats()));
    return s;
  }

  /** Runs one operation, timing it; a throw is counted and recorded as an error, and yields undefined. */
  async measure<T>(op: string, fn: (moved: Moved) => Promise<T>): Promise<T | undefined> {
    const s = this.stats(op);
    const moved: Moved = { bytes: 0, verified: 0 };
    const t0 = performance.now();
    try {
      const value = await fn(moved);
      s.latencies.push(performance.now() - t0);
      s.count++;
      s.bytes += moved.bytes;
      s.verified += moved.verified;
      return value;
    } catch (err) {
      s.errors++;
      this.error(op, describe(err));
      return undefined;
    }
  }

  error(op: string, message: string): void {
    this.errors.total++;
    if (this.errors.kept.length < MAX_KEPT_ERRORS) {
      this.errors.kept.push({ phase: this.name, op, at: Number(((performance.now() - this.started) / 1000).toFixed(2)), message });
    }
  }

  end(): void {
    this.ended ??= performance.now();
  }

  get seconds(): number {
    return ((this.ended ?? performance.now()) - this.started) / 1000;
  }

  summary() {
    const seconds = this.seconds;
    return {
      phase: this.name,
      seconds: round(seconds, 2),
      ops: [...this.ops].toSorted(([a], [b]) => a.localeCompare(b)).map(([op, s]) => {
        const sorted = s.latencies.toSorted((a, b) => a - b);
        return {
          op,
          count: s.count,
          opsPerSecond: round(s.count / seconds, 1),
          p50Ms: round(percentile(sorted, 0.5), 1),
          p99Ms: round(percentile(sorted, 0.99), 1),
          maxMs: round(sorted.at(-1) ?? NaN, 1),
          errors: s.errors,
          bytes: s.bytes,
          verifiedBytes: s.verified,
        };
      }),
    };
  }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number, digits: number): number => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

function describe(err: unknown): string {
  if (err instanceof ConnectError) return `gRPC ${err.name}: code ${err.code} ${err.rawMessage}`;
  if (err instanceof OpenAI.APIError) return `openai SDK ${err.status ?? "(no status)"}: ${err.message}`;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const cause = err.cause instanceof Error ? ` (cause: ${describe(err.cause)})` : "";
    return `${code ? `${code}: ` : ""}${err.message}${cause}`;
  }
  return String(err);
}

class Mismatch extends Error {}

function expect(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Mismatch(message);
}

// ---------------------------------------------------------------------------
// Clients: REST on a keep-alive agent, gRPC on a few HTTP/2 connections, the openai SDK
// ---------------------------------------------------------------------------

let requestCounter = 0;
const nextRequestId = (): string => `load-${process.pid}-${++requestCounter}`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Raw HTTP/1.1 on one keep-alive agent sized for every worker, so the client is not the bottleneck. */
class Rest {
  readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    sockets: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
  }

  /**
   * One request; `body` is a buffer or a writer that streams it (and ends the request). The whole
   * exchange, body included, must finish within `timeoutMs`. Rejects on transport errors only.
   */
  call<T>(
    method: string,
    path: string,
    headers: http.OutgoingHttpHeaders,
    body: Buffer | ((req: http.ClientRequest) => Promise<void>) | undefined,
    read: (res: http.IncomingMessage, requestId: string) => Promise<T>,
    timeoutMs: number,
  ): Promise<T> {
    const requestId = nextRequestId();
    const what = `${method} ${path} (x-request-id ${requestId})`;
    return new Promise<T>((resolve, reject) => {
      const req = http.request(new URL(path, this.baseUrl), { method, agent: this.agent, headers: { ...headers, "x-request-id": requestId } });
      const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${timeoutMs / 1000} s`)), timeoutMs);
      const fail = (err: unknown) => {
        clearTimeout(timer);
        const e = new Error(`${what}: ${describe(err)}`);
        reject(err instanceof Mismatch ? new Mismatch(e.message) : e);
      };
      req.once("error", fail);
      req.once("response", (res) => {
        read(res, requestId).then(
          (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          (err: unknown) => {
            req.destroy();
            fail(err);
          },
        );
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else body(req).catch((err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))));
    });
  }

  /** A buffered exchange (small bodies only). */
  request(method: string, path: string, body?: Buffer, headers: http.OutgoingHttpHeaders = {}, timeoutMs = SMALL_TIMEOUT_MS): Promise<Answer> {
    const h = body === undefined ? headers : { ...headers, "content-length": body.length };
    return this.call(method, path, h, body, async (res) => ({ status: res.statusCode ?? 0, headers: res.headers, body: await collect(res) }), timeoutMs);
  }

  /** A JSON answer with status 200, else a Mismatch naming the status and the body. */
  async json<T>(method: string, path: string, body?: Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<T> {
    const res = await this.request(method, path, body, headers);
    expect(res.status === 200, `${method} ${path}: expected 200, got ${res.status} ${res.body.toString("utf8").slice(0, 300)} (x-request-id ${res.headers["x-request-id"]})`);
    return JSON.parse(res.body.toString("utf8")) as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Raises the connection-level HTTP/2 window too, which connect-node leaves at Node's 64 KiB. */
class WideWindowSessionManager extends Http2SessionManager {
  override async request(...args: Parameters<Http2SessionManager["request"]>): Promise<http2.ClientHttp2Stream> {
    const stream = await super.request(...args);
    stream.session?.setLocalWindowSize(16 * MiB);
    return stream;
  }
}

/** connect-node gRPC clients on a few HTTP/2 connections (a worker uses worker % size). */
class GrpcPool {
  private readonly managers: Http2SessionManager[] = [];
  private readonly clients: Client<typeof FilesService>[] = [];

  constructor(baseUrl: string, size: number) {
    for (let i = 0; i < size; i++) {
      const sessionManager = new WideWindowSessionManager(baseUrl, undefined, { settings: { initialWindowSize: 16 * MiB } });
      this.managers.push(sessionManager);
      // Identity only: the payloads are random, compressing them would only burn the shared CPUs.
      const transport = createGrpcTransport({ baseUrl, sessionManager, readMaxBytes: 16 * MiB, writeMaxBytes: 16 * MiB, acceptCompression: [] });
      this.clients.push(createClient(FilesService, transport));
    }
  }

  client(i: number): Client<typeof FilesService> {
    return this.clients[i % this.clients.length]!;
  }

  close(): void {
    for (const m of this.managers) m.abort();
  }
}

interface Clients {
  rest: Rest;
  grpc: GrpcPool;
  sdk: OpenAI;
}

const SMALL_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------
// Operations on small files
// ---------------------------------------------------------------------------

interface OwnFile {
  id: string;
  bytes: number;
  sha256: string;
  /** Downloaded and checked at least once. */
  verified: boolean;
}

/** Random small payloads as slices of one random pool, each made unique by a random 16-byte head. */
const POOL = randomBytes(8 * MiB);

function smallPayload(): Buffer {
  const size = KiB + Math.floor(Math.random() * 63 * KiB) + 1; // 1 KiB + 1 … 64 KiB
  const at = Math.floor(Math.random() * (POOL.length - size));
  const data = Buffer.allocUnsafe(size);
  POOL.copy(data, 0, at, at + size);
  randomBytes(16).copy(data, 0);
  return data;
}

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

interface FileJson {
  id: string;
  object: string;
  bytes: number;
  filename: string;
  purpose: string;
}

function checkFileJson(file: FileJson, expected: { bytes: number; filename?: string; id?: string }, what: string): void {
  expect(typeof file.id === "string" && /^file-/.test(file.id), `${what}: bad id ${JSON.stringify(file.id)}`);
  if (expected.id !== undefined) expect(file.id === expected.id, `${what}: id ${file.id}, expected ${expected.id}`);
  expect(file.bytes === expected.bytes, `${what}: bytes ${file.bytes}, expected ${expected.bytes} (file ${file.id})`);
  if (expected.filename !== undefined) expect(file.filename === expected.filename, `${what}: filename ${file.filename}, expected ${expected.filename}`);
}

function multipartBody(data: Buffer, filename: string): { body: Buffer; contentType: string } {
  const boundary = `load${randomBytes(8).toString("hex")}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

let fileCounter = 0;

async function uploadRest(c: Clients, moved: Moved): Promise<OwnFile> {
  const data = smallPayload();
  const filename = `load-${++fileCounter}.bin`;
  const { body, contentType } = multipartBody(data, filename);
  const file = await c.rest.json<FileJson>("POST", "/v1/files", body, { "content-type": contentType });
  checkFileJson(file, { bytes: data.length, filename }, "POST /v1/files");
  moved.bytes = data.length;
  return { id: file.id, bytes: data.length, sha256: sha256(data), verified: false };
}

async function uploadSdk(c: Clients, moved: Moved): Promise<OwnFile> {
  const data = smallPayload();
  const filename = `load-${++fileCounter}.bin`;
  const file = await c.sdk.files.create({ file: await toFile(data, filename), purpose: "assistants" }, { headers: { "x-request-id": nextRequestId() } });
  checkFileJson(file as FileJson, { bytes: data.length, filename }, "openai files.create");
  moved.bytes = data.length;
  return { id: file.id, bytes: data.length, sha256: sha256(data), verified: false };
}

async function uploadGrpc(c: Clients, worker: number, moved: Moved): Promise<OwnFile> {
  const data = smallPayload();
  const digest = sha256(data);
  const filename = `load-${++fileCounter}.bin`;
  const requestId = nextRequestId();
  async function* messages(): AsyncGenerator<UploadFileRequest> {
    yield create(UploadFileRequestSchema, {
      payload: { case: "metadata", value: { filename, purpose: FilePurpose.ASSISTANTS, sizeBytes: BigInt(data.length), sha256: digest } },
    });
    for (let at = 0; at < data.length; at += 16 * KiB) yield create(UploadFileRequestSchema, { payload: { case: "chunk", value: data.subarray(at, at + 16 * KiB) } });
  }
  const res = await c.grpc.client(worker).uploadFile(messages(), { timeoutMs: SMALL_TIMEOUT_MS, headers: { "x-request-id": requestId } });
  const file = res.file;
  expect(file !== undefined, `UploadFile (x-request-id ${requestId}): no file in the answer`);
  expect(Number(file.bytes) === data.length, `UploadFile (x-request-id ${requestId}): bytes ${file.bytes}, expected ${data.length}`);
  expect(file.sha256 === digest, `UploadFile (x-request-id ${requestId}): sha256 ${file.sha256}, expected ${digest}`);
  moved.bytes = data.length;
  moved.verified = data.length; // the server hashed what it received
  return { id: file.id, bytes: data.length, sha256: digest, verified: false };
}

async function downloadRest(c: Clients, f: OwnFile, moved: Moved): Promise<void> {
  const path = `/v1/files/${f.id}/content`;
  const res = await c.rest.request("GET", path);
  const rid = res.headers["x-request-id"];
  expect(res.status === 200, `GET ${path}: expected 200, got ${res.status} ${res.body.toString("utf8").slice(0, 300)} (x-request-id ${rid})`);
  expect(res.body.length === f.bytes, `GET ${path}: ${res.body.length} bytes, expected ${f.bytes} (x-request-id ${rid})`);
  const got = sha256(res.body);
  expect(got === f.sha256, `GET ${path}: sha256 ${got}, expected ${f.sha256} (x-request-id ${rid})`);
  expect(res.headers.etag === `"${f.sha256}"`, `GET ${path}: etag ${res.headers.etag}, expected "${f.sha256}" (x-request-id ${rid})`);
  moved.bytes = moved.verified = res.body.length;
  f.verified = true;
}

async function downloadGrpc(c: Clients, worker: number, f: OwnFile, moved: Moved): Promise<void> {
  const requestId = nextRequestId();
  const what = `DownloadFile ${f.id} (x-request-id ${requestId})`;
  const hash = createHash("sha256");
  let bytes = 0;
  let first = true;
  for await (const msg of c.grpc.client(worker).downloadFile({ fileId: f.id }, { timeoutMs: SMALL_TIMEOUT_MS, headers: { "x-request-id": requestId } })) {
    if (first) {
      expect(msg.payload.case === "file", `${what}: the first message is ${msg.payload.case}, not file`);
      expect(msg.payload.value.id === f.id && Number(msg.payload.value.bytes) === f.bytes, `${what}: file ${msg.payload.value.id} of ${msg.payload.value.bytes} bytes`);
      first = false;
      continue;
    }
    expect(msg.payload.case === "chunk", `${what}: a later message is ${msg.payload.case}, not chunk`);
    hash.update(msg.payload.value);
    bytes += msg.payload.value.byteLength;
  }
  expect(!first, `${what}: no message at all`);
  const got = hash.digest("hex");
  expect(bytes === f.bytes && got === f.sha256, `${what}: ${bytes} bytes with sha256 ${got}, expected ${f.bytes} with ${f.sha256}`);
  moved.bytes = moved.verified = bytes;
  f.verified = true;
}

async function retrieve(c: Clients, f: OwnFile): Promise<void> {
  const file = await c.rest.json<FileJson>("GET", `/v1/files/${f.id}`);
  checkFileJson(file, { bytes: f.bytes, id: f.id }, `GET /v1/files/${f.id}`);
}

async function list(c: Clients): Promise<void> {
  const page = await c.rest.json<{ object: string; data: FileJson[]; has_more: boolean }>("GET", "/v1/files?limit=100");
  expect(page.object === "list" && Array.isArray(page.data), `GET /v1/files?limit=100: not a list: ${JSON.stringify(page).slice(0, 200)}`);
  expect(page.data.length <= 100, `GET /v1/files?limit=100: ${page.data.length} files`);
  for (const f of page.data) expect(typeof f.id === "string" && typeof f.bytes === "number", `GET /v1/files?limit=100: bad entry ${JSON.stringify(f)}`);
}

async function deleteRest(c: Clients, f: OwnFile): Promise<void> {
  const res = await c.rest.json<{ id: string; deleted: boolean }>("DELETE", `/v1/files/${f.id}`);
  expect(res.id === f.id && res.deleted === true, `DELETE /v1/files/${f.id}: ${JSON.stringify(res)}`);
}

async function deleteGrpc(c: Clients, worker: number, f: OwnFile): Promise<void> {
  const requestId = nextRequestId();
  const res = await c.grpc.client(worker).deleteFile({ fileId: f.id }, { timeoutMs: SMALL_TIMEOUT_MS, headers: { "x-request-id": requestId } });
  expect(res.id === f.id && res.deleted, `DeleteFile ${f.id} (x-request-id ${requestId}): id ${res.id}, deleted ${res.deleted}`);
}

// ---------------------------------------------------------------------------
// Phase 1: the small-file mix
// ---------------------------------------------------------------------------

/** Weights of the mix; uploads keep the population up, deletes only take files already verified. */
const MIX = [
  ["upload (REST multipart)", 14],
  ["upload (openai SDK)", 4],
  ["upload (gRPC stream)", 10],
  ["list (REST, limit=100)", 10],
  ["retrieve (REST)", 15],
  ["download (REST)", 16],
  ["download (gRPC)", 10],
  ["delete (REST)", 12],
  ["delete (gRPC)", 9],
] as const;
type OpName = (typeof MIX)[number][0];
const MIX_TOTAL = MIX.reduce((sum, [, w]) => sum + w, 0);
/** Files one worker keeps at most, so the listing and the database grow but stay bounded. */
const MAX_OWN = 16;

function pickOp(own: OwnFile[]): OpName {
  if (own.length === 0) return Math.random() < 0.5 ? "upload (REST multipart)" : "upload (gRPC stream)";
  if (own.length >= MAX_OWN) return own.some((f) => f.verified) ? "delete (REST)" : "download (REST)";
  let r = Math.random() * MIX_TOTAL;
  for (const [op, weight] of MIX) {
    r -= weight;
    if (r < 0) return op;
  }
  return "list (REST, limit=100)";
}

interface Population {
  /** Files each worker holds: uploaded and not (yet) deleted. */
  owned: OwnFile[][];
  /** Ids whose state is unknown because an upload or delete failed (excluded from the listing check). */
  uncertain: Set<string>;
}

async function smallWorker(w: number, c: Clients, phase: Phase, pop: Population, endAt: number, stop: { now: boolean }): Promise<void> {
  const own: OwnFile[] = [];
  pop.owned[w] = own;
  const pickOwn = (verifiedOnly: boolean): OwnFile | undefined => {
    const candidates = verifiedOnly ? own.filter((f) => f.verified) : own;
    return candidates[Math.floor(Math.random() * candidates.length)];
  };
  while (performance.now() < endAt && !stop.now) {
    let op = pickOp(own);
    if (op.startsWith("delete") && !own.some((f) => f.verified)) op = "download (REST)";
    switch (op) {
      case "upload (REST multipart)":
      case "upload (openai SDK)":
      case "upload (gRPC stream)": {
        const file = await phase.measure(op, (m) => (op === "upload (REST multipart)" ? uploadRest(c, m) : op === "upload (openai SDK)" ? uploadSdk(c, m) : uploadGrpc(c, w, m)));
        if (file) own.push(file);
        break;
      }
      case "list (REST, limit=100)":
        await phase.measure(op, () => list(c));
        break;
      case "retrieve (REST)": {
        const f = pickOwn(false)!;
        await phase.measure(op, () => retrieve(c, f));
        break;
      }
      case "download (REST)":
      case "download (gRPC)": {
        const f = pickOwn(false)!;
        await phase.measure(op, (m) => (op === "download (REST)" ? downloadRest(c, f, m) : downloadGrpc(c, w, f, m)));
        break;
      }
      case "delete (REST)":
      case "delete (gRPC)": {
        const f = pickOwn(true)!;
        own.splice(own.indexOf(f), 1);
        const ok = await phase.measure(op, async () => {
          await (op === "delete (REST)" ? deleteRest(c, f) : deleteGrpc(c, w, f));
          return true;
        });
        if (!ok) pop.uncertain.add(f.id);
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Phase 2: consistency after the mix
// ---------------------------------------------------------------------------

async function listAllIds(c: Clients): Promise<string[]> {
  const ids: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await c.rest.json<{ data: FileJson[]; has_more: boolean; last_id?: string | null }>(
      "GET",
      `/v1/files?limit=10000&order=asc${after ? `&after=${after}` : ""}`,
    );
    ids.push(...page.data.map((f) => f.id));
    if (!page.has_more) return ids;
    expect(page.data.length > 0 && typeof page.last_id === "string", "GET /v1/files: has_more without last_id");
    after = page.last_id!;
  }
}

async function pool<T>(items: T[], width: number, fn: (item: T, slot: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async (_, slot) => {
      while (next < items.length) await fn(items[next++]!, slot);
    }),
  );
}

function compareListing(phase: Phase, listed: string[], expected: Set<string>, uncertain: Set<string>, when: string): void {
  const seen = new Set(listed);
  const missing = [...expected].filter((id) => !seen.has(id));
  const extra = listed.filter((id) => !expected.has(id) && !uncertain.has(id));
  const duplicates = listed.length - seen.size;
  if (missing.length > 0) phase.error("listing check", `${when}: ${missing.length} uploaded file(s) missing from GET /v1/files, e.g. ${missing.slice(0, 5).join(", ")}`);
  if (extra.length > 0) phase.error("listing check", `${when}: ${extra.length} file(s) listed that were deleted or never uploaded, e.g. ${extra.slice(0, 5).join(", ")}`);
  if (duplicates > 0) phase.error("listing check", `${when}: ${duplicates} duplicate id(s) across the listing's pages`);
}

async function checkPhase(c: Clients, phase: Phase, pop: Population): Promise<void> {
  const remaining = pop.owned.flat();
  const expected = new Set(remaining.map((f) => f.id));
  const listed = await phase.measure("list all (REST, paged)", () => listAllIds(c));
  if (listed) compareListing(phase, listed, expected, pop.uncertain, `after the mix (${expected.size} files held)`);
  await pool(
    remaining.filter((f) => !f.verified),
    64,
    (f) => phase.measure("download never-read file (REST)", (m) => downloadRest(c, f, m)),
  );
  await pool(remaining, 64, (f) =>
    phase.measure("delete remaining (REST)", async () => {
      await deleteRest(c, f);
      return true;
    }).then((ok) => {
      if (!ok) pop.uncertain.add(f.id);
    }),
  );
  const after = await phase.measure("list all (REST, paged)", () => listAllIds(c));
  if (after) compareListing(phase, after, new Set(), pop.uncertain, "after deleting every file");
}

// ---------------------------------------------------------------------------
// Phase 3: large files, streamed both ways
// ---------------------------------------------------------------------------

/** A random-looking payload of `size` bytes in 1 MiB blocks from AES-CTR, hashed as it is generated. */
function* largeBlocks(size: number, key: Buffer, hash: Hash): Generator<Buffer> {
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  for (let at = 0; at < size; at += MiB) {
    const block = cipher.update(zeros.subarray(0, Math.min(MiB, size - at)));
    hash.update(block);
    yield block;
  }
}

interface LargeFile {
  index: number;
  transport: "REST" | "gRPC";
  id: string;
  sha256: string;
}

/** Resolves once `req` can take more, or is gone (so a failed request does not strand the writer). */
function drained(req: http.ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off("drain", done);
      req.off("close", done);
      resolve();
    };
    req.on("drain", done);
    req.on("close", done);
  });
}

async function largeUploadRest(c: Clients, index: number, size: number, timeoutMs: number, moved: Moved): Promise<LargeFile> {
  const hash = createHash("sha256");
  const boundary = `load${randomBytes(8).toString("hex")}`;
  const filename = `large-${index}.bin`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const headers = { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": head.length + size + tail.length };
  const writer = async (req: http.ClientRequest) => {
    req.write(head);
    for (const block of largeBlocks(size, randomBytes(16), hash)) {
      if (!req.write(block)) await drained(req);
      if (req.destroyed) return; // failed or timed out: the call reports why
    }
    req.end(tail);
  };
  const answer = await c.rest.call("POST", "/v1/files", headers, writer, async (res) => ({ status: res.statusCode, body: await collect(res) }), timeoutMs);
  expect(answer.status === 200, `POST /v1/files (large): expected 200, got ${answer.status} ${answer.body.toString("utf8").slice(0, 300)}`);
  const file = JSON.parse(answer.body.toString("utf8")) as FileJson;
  checkFileJson(file, { bytes: size, filename }, "POST /v1/files (large)");
  moved.bytes = size;
  return { index, transport: "REST", id: file.id, sha256: hash.digest("hex") };
}

async function largeUploadGrpc(c: Clients, index: number, size: number, timeoutMs: number, moved: Moved): Promise<LargeFile> {
  const hash = createHash("sha256");
  const requestId = nextRequestId();
  async function* messages(): AsyncGenerator<UploadFileRequest> {
    yield create(UploadFileRequestSchema, {
      payload: { case: "metadata", value: { filename: `large-${index}.bin`, purpose: FilePurpose.ASSISTANTS, sizeBytes: BigInt(size) } },
    });
    for (const block of largeBlocks(size, randomBytes(16), hash)) yield create(UploadFileRequestSchema, { payload: { case: "chunk", value: block } });
  }
  const res = await c.grpc.client(index).uploadFile(messages(), { timeoutMs, headers: { "x-request-id": requestId } });
  const digest = hash.digest("hex");
  const what = `UploadFile large-${index} (x-request-id ${requestId})`;
  expect(res.file !== undefined, `${what}: no file in the answer`);
  expect(Number(res.file.bytes) === size, `${what}: bytes ${res.file.bytes}, expected ${size}`);
  expect(res.file.sha256 === digest, `${what}: the server's sha256 ${res.file.sha256}, the client sent ${digest}`);
  moved.bytes = moved.verified = size;
  return { index, transport: "gRPC", id: res.file.id, sha256: digest };
}

async function largeDownloadRest(c: Clients, f: LargeFile, size: number, timeoutMs: number, moved: Moved): Promise<void> {
  const path = `/v1/files/${f.id}/content`;
  await c.rest.call(
    "GET",
    path,
    {},
    undefined,
    async (res, rid) => {
      if (res.statusCode !== 200) {
        const body = await collect(res);
        throw new Mismatch(`expected 200, got ${res.statusCode} ${body.toString("utf8").slice(0, 300)} (x-request-id ${rid})`);
      }
      expect(res.headers.etag === `"${f.sha256}"`, `etag ${res.headers.etag}, expected "${f.sha256}"`);
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      const got = hash.digest("hex");
      expect(bytes === size && got === f.sha256, `${bytes} bytes with sha256 ${got}, expected ${size} with ${f.sha256}`);
      moved.bytes = moved.verified = bytes;
    },
    timeoutMs,
  );
}

async function largeDownloadGrpc(c: Clients, f: LargeFile, size: number, timeoutMs: number, moved: Moved): Promise<void> {
  const own: OwnFile = { id: f.id, bytes: size, sha256: f.sha256, verified: false };
  const requestId = nextRequestId();
  const what = `DownloadFile ${f.id} (x-request-id ${requestId})`;
  const hash = createHash("sha256");
  let bytes = 0;
  let first = true;
  for await (const msg of c.grpc.client(f.index).downloadFile({ fileId: f.id }, { timeoutMs, headers: { "x-request-id": requestId } })) {
    if (first) {
      expect(msg.payload.case === "file" && msg.payload.value.id === f.id, `${what}: the first message is not the file`);
      first = false;
      continue;
    }
    expect(msg.payload.case === "chunk", `${what}: a later message is ${msg.payload.case}, not chunk`);
    hash.update(msg.payload.value);
    bytes += msg.payload.value.byteLength;
  }
  const got = hash.digest("hex");
  expect(bytes === own.bytes && got === own.sha256, `${what}: ${bytes} bytes with sha256 ${got}, expected ${own.bytes} with ${own.sha256}`);
  moved.bytes = moved.verified = bytes;
}

async function largePhase(c: Clients, phase: Phase, count: number, size: number): Promise<void> {
  const timeoutMs = largeTimeoutMs(count, size);
  const indexes = Array.from({ length: count }, (_, i) => i);
  const uploaded = await Promise.all(
    indexes.map((i) =>
      i % 2 === 0
        ? phase.measure("large upload (REST multipart)", (m) => largeUploadRest(c, i, size, timeoutMs, m))
        : phase.measure("large upload (gRPC stream)", (m) => largeUploadGrpc(c, i, size, timeoutMs, m)),
    ),
  );
  const files = uploaded.filter((f): f is LargeFile => f !== undefined);
  await Promise.all(
    files.map((f) =>
      f.transport === "REST"
        ? phase.measure("large download (REST)", (m) => largeDownloadRest(c, f, size, timeoutMs, m))
        : phase.measure("large download (gRPC)", (m) => largeDownloadGrpc(c, f, size, timeoutMs, m)),
    ),
  );
  await Promise.all(files.map((f) => phase.measure("large delete (REST)", () => deleteRest(c, { id: f.id, bytes: size, sha256: f.sha256, verified: true }))));
}

// ---------------------------------------------------------------------------
// CPU: who used the two cores, to tell whether the client, moto or the server was the limit
// ---------------------------------------------------------------------------

/** utime + stime of a process in seconds (Linux reports clock ticks, 100 per second). */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** The moto_server this process started, if any (startMoto does not expose its pid). */
function findMotoPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("moto_server")) return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

type CpuShare = Record<"client" | "server" | "moto", number | undefined>;

/** Starts measuring; the returned function gives each process's CPU use since then, in % of one core. */
function cpuMeter(serverPid: number, motoPid: number | undefined): () => CpuShare {
  const t0 = performance.now();
  const client0 = process.cpuUsage();
  const server0 = cpuSeconds(serverPid);
  const moto0 = cpuSeconds(motoPid);
  return () => {
    const wall = (performance.now() - t0) / 1000;
    const used = process.cpuUsage(client0);
    const pct = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : round(((b - a) / wall) * 100, 0));
    return {
      client: round(((used.user + used.system) / 1e6 / wall) * 100, 0),
      server: pct(server0, cpuSeconds(serverPid)),
      moto: pct(moto0, cpuSeconds(motoPid)),
    };
  };
}

// ---------------------------------------------------------------------------
// The server's log: anything abnormal, as evidence
// ---------------------------------------------------------------------------

class ServerLog {
  lines = 0;
  warnings = 0;
  errors = 0;
  http5xx = 0;
  httpIncomplete = 0;
  rpcFailures = 0;
  readonly samples: string[] = [];
  private readonly tail: string[] = [];
  private buffered = "";

  constructor(server: ServerProcess) {
    const onData = (data: Buffer | string) => {
      this.buffered += data.toString();
      let nl: number;
      while ((nl = this.buffered.indexOf("\n")) >= 0) {
        this.line(this.buffered.slice(0, nl));
        this.buffered = this.buffered.slice(nl + 1);
      }
      // startServer keeps every line; the request log of a long run would only grow the client's heap.
      server.output.length = 0;
    };
    server.child.stdout!.on("data", onData);
    server.child.stderr!.on("data", onData);
  }

  private line(text: string): void {
    this.lines++;
    this.tail.push(text);
    if (this.tail.length > 40) this.tail.shift();
    let entry: { level?: number; msg?: string; status?: number; completed?: boolean; code?: string };
    try {
      entry = JSON.parse(text) as typeof entry;
    } catch {
      this.sample(text); // not a log line: a crash, a warning from Node
      return;
    }
    let abnormal = false;
    if ((entry.level ?? 0) >= 50) abnormal = ++this.errors > 0;
    else if ((entry.level ?? 0) >= 40) abnormal = ++this.warnings > 0;
    if (entry.msg === "http" && (entry.status ?? 0) >= 500) abnormal = ++this.http5xx > 0;
    if (entry.msg === "http" && entry.completed === false) abnormal = ++this.httpIncomplete > 0;
    if (entry.msg === "rpc" && entry.code !== undefined && entry.code !== "ok") abnormal = ++this.rpcFailures > 0;
    if (abnormal) this.sample(text);
  }

  private sample(text: string): void {
    if (this.samples.length < 20) this.samples.push(text.length > 1_000 ? `${text.slice(0, 1_000)}…` : text);
  }

  get abnormal(): number {
    return this.warnings + this.errors + this.http5xx + this.httpIncomplete + this.rpcFailures;
  }

  lastLines(): string {
    return this.tail.join("\n");
  }

  summary() {
    return {
      lines: this.lines,
      warnings: this.warnings,
      errors: this.errors,
      http5xx: this.http5xx,
      httpIncomplete: this.httpIncomplete,
      rpcFailures: this.rpcFailures,
      samples: this.samples,
    };
  }
}

// ---------------------------------------------------------------------------
// Set-up and clean-up
// ---------------------------------------------------------------------------

/** Clean-up steps, last in first out, each bounded so a stuck one cannot hold the exit. */
class Cleanup {
  private steps: { name: string; fn: () => Promise<unknown> }[] = [];

  add(name: string, fn: () => Promise<unknown>): () => Promise<void> {
    const step = { name, fn };
    this.steps.push(step);
    // Running a step early removes it, so the final run does not repeat it.
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await this.runStep(step);
    };
  }

  private async runStep({ name, fn }: { name: string; fn: () => Promise<unknown> }): Promise<void> {
    const t0 = performance.now();
    const timeout = sleep(30_000, "timeout" as const, { ref: false });
    const outcome = await Promise.race([fn().then(() => "ok" as const), timeout]).catch((err: unknown) => err);
    if (outcome !== "ok") console.error(`[load] clean-up '${name}' failed: ${outcome === "timeout" ? "timed out" : describe(outcome)}`);
    else if (performance.now() - t0 > 3_000) log(`clean-up '${name}' took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  async runAll(): Promise<void> {
    while (this.steps.length > 0) await this.runStep(this.steps.pop()!);
  }
}

interface S3Settings {
  endpoint: string;
  external: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

function s3Client(s3: S3Settings): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: process.env.AWS_REGION || "us-east-1",
    forcePathStyle: true,
    credentials: s3.credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Objects and unfinished multipart uploads left in the bucket. */
async function bucketLeftovers(s3: S3Settings, bucket: string): Promise<{ keys: string[]; uploads: string[] }> {
  const client = s3Client(s3);
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token);
    const mpu = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return { keys, uploads: (mpu.Uploads ?? []).map((u) => `${u.Key} (${u.UploadId})`) };
  } finally {
    client.destroy();
  }
}

async function removeBucket(s3: S3Settings, bucket: string): Promise<void> {
  const client = s3Client(s3);
  try {
    const { keys } = await bucketLeftovers(s3, bucket);
    for (let i = 0; i < keys.length; i += 1000) {
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }));
    }
    const mpu = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const u of mpu.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key!, UploadId: u.UploadId! }));
    await client.send(new DeleteBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

// ---------------------------------------------------------------------------
// One run: one metadata store
// ---------------------------------------------------------------------------

interface RunResult {
  metadata: Metadata;
  serverPid?: number;
  idleRssBytes?: number;
  peakRssAfterSmallBytes?: number;
  peakRssBytes?: number;
  /** Reported phases, added as they start, so a report on a deadline shows the one in progress. */
  phases: Phase[];
  /** CPU use per phase, in % of one core (the machine has availableParallelism() cores). */
  cpu: Record<string, CpuShare>;
  serverLog?: ReturnType<ServerLog["summary"]>;
  serverExitCode?: number | null;
  bucketLeftovers?: { keys: string[]; uploads: string[] };
}

interface RunContext {
  options: Options;
  s3: S3Settings;
  cleanup: Cleanup;
  errors: { total: number; kept: ErrorRecord[] };
  stop: { now: boolean };
  postgres: () => Promise<PostgresServer>;
  /** The runs so far, the current one included, for a report on a deadline. */
  results: RunResult[];
}

async function runOne(ctx: RunContext, metadata: Metadata): Promise<void> {
  const { options } = ctx;
  const result: RunResult = { metadata, phases: [], cpu: {} };
  ctx.results.push(result);
  const dir = await mkdtemp(join(tmpdir(), `files-load-${metadata}-`));
  ctx.cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));

  const bucket = `load-${metadata}-${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  const admin = s3Client(ctx.s3);
  try {
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    admin.destroy();
  }
  if (ctx.s3.external) ctx.cleanup.add(`remove bucket ${bucket}`, () => removeBucket(ctx.s3, bucket));

  const store = metadata === "sqlite" ? { type: "sqlite", db_path: join(dir, "files.db") } : { type: "postgres", url: (await ctx.postgres()).url };
  const config = {
    ...s3ProviderConfig(ctx.s3.endpoint, bucket, store, { aws_access_key_id: ctx.s3.credentials.accessKeyId, aws_secret_access_key: ctx.s3.credentials.secretAccessKey }),
    server: { host: "127.0.0.1", limits: { max_file_bytes: Math.max(512 * MiB, options.largeBytes) } },
  };
  const configPath = join(dir, "files.yaml");
  await writeFile(configPath, stringify(config));

  log(`${metadata}: starting the server (bucket ${bucket})...`);
  // --config as an argument: startServer's own `config` option leaves a temp dir behind.
  const server = await startServer({ args: ["--config", configPath] });
  const pid = server.child.pid!;
  result.serverPid = pid;
  const guard = guardChildProcess(pid, { exitSignal: "SIGKILL" });
  const serverLog = new ServerLog(server);
  let stopping = false;
  const phases: Phase[] = [];
  server.child.once("exit", (code, signal) => {
    if (stopping) return;
    (phases.at(-1) ?? new Phase("setup", ctx.errors)).error("server", `the server exited during the run (code ${code}, signal ${signal}); its last lines:\n${serverLog.lastLines()}`);
    ctx.stop.now = true;
  });
  const stopServer = ctx.cleanup.add(`stop the ${metadata} server`, async () => {
    stopping = true;
    server.child.kill("SIGTERM");
    if (!(await waitForExit(server.child, 15_000))) {
      server.child.kill("SIGKILL");
      await waitForExit(server.child, 5_000);
    }
    guard.release();
  });

  const sockets = options.concurrency + options.largeCount + 8;
  const clients: Clients = {
    rest: new Rest(server.baseUrl, sockets),
    grpc: new GrpcPool(server.baseUrl, Math.max(2, Math.ceil(options.concurrency / 50))),
    sdk: new OpenAI({ apiKey: "load-test", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: SMALL_TIMEOUT_MS }),
  };
  const closeClients = ctx.cleanup.add(`close the ${metadata} clients`, async () => {
    clients.rest.close();
    clients.grpc.close();
  });
  const memory = (field: "VmRSS" | "VmHWM"): number | undefined => {
    try {
      return processMemory(pid, field);
    } catch {
      return undefined; // the server is gone; that is reported as an error already
    }
  };

  // Warm-up: one round trip per path, so the idle figure includes the loaded code, not a cold start.
  const warm = new Phase("warm-up", ctx.errors);
  phases.push(warm);
  for (let i = 0; i < 2; i++) {
    const f = await warm.measure("warm-up upload", (m) => (i === 0 ? uploadRest(clients, m) : uploadGrpc(clients, 0, m)));
    if (f) {
      await warm.measure("warm-up download", (m) => (i === 0 ? downloadRest(clients, f, m) : downloadGrpc(clients, 0, f, m)));
      await warm.measure("warm-up delete", () => deleteRest(clients, f));
    }
  }
  warm.end();
  result.idleRssBytes = memory("VmRSS");
  log(`${metadata}: idle RSS ${mib(result.idleRssBytes)}; small-file mix: ${options.concurrency} workers for ${options.durationSeconds} s...`);

  const motoPid = ctx.s3.external ? undefined : findMotoPid();
  let cpu = cpuMeter(pid, motoPid);
  const small = new Phase("small", ctx.errors);
  phases.push(small);
  result.phases.push(small);
  const pop: Population = { owned: [], uncertain: new Set() };
  const endAt = performance.now() + options.durationSeconds * 1000;
  await Promise.all(Array.from({ length: options.concurrency }, (_, w) => smallWorker(w, clients, small, pop, endAt, ctx.stop)));
  small.end();
  result.cpu.small = cpu();
  result.peakRssAfterSmallBytes = memory("VmHWM");

  if (!ctx.stop.now) {
    log(`${metadata}: checking the listing against ${pop.owned.flat().length} files held, verifying and deleting them...`);
    const check = new Phase("check", ctx.errors);
    phases.push(check);
    result.phases.push(check);
    await checkPhase(clients, check, pop);
    check.end();
  }

  if (!ctx.stop.now && options.largeCount > 0) {
    log(`${metadata}: ${options.largeCount} concurrent ${mib(options.largeBytes)} uploads, then downloads...`);
    const large = new Phase("large", ctx.errors);
    phases.push(large);
    result.phases.push(large);
    cpu = cpuMeter(pid, motoPid);
    await largePhase(clients, large, options.largeCount, options.largeBytes);
    large.end();
    result.cpu.large = cpu();
  }
  result.peakRssBytes = memory("VmHWM");

  if (!ctx.stop.now) {
    const leftovers = await bucketLeftovers(ctx.s3, bucket);
    result.bucketLeftovers = leftovers;
    const last = phases.at(-1)!;
    if (pop.uncertain.size === 0 && leftovers.keys.length > 0) last.error("bucket check", `${leftovers.keys.length} object(s) left in the bucket after every file was deleted, e.g. ${leftovers.keys.slice(0, 5).join(", ")}`);
    if (leftovers.uploads.length > 0) last.error("bucket check", `${leftovers.uploads.length} unfinished multipart upload(s) left, e.g. ${leftovers.uploads.slice(0, 3).join(", ")}`);
  }

  await closeClients();
  await stopServer();
  result.serverExitCode = server.child.exitCode;
  result.serverLog = serverLog.summary();
  if (server.child.exitCode !== 0) new Phase("shutdown", ctx.errors).error("server", `the server exited with code ${server.child.exitCode} (signal ${server.child.signalCode}) on SIGTERM`);
  if (serverLog.abnormal > 0) {
    new Phase("server log", ctx.errors).error(
      "server log",
      `${serverLog.errors} error, ${serverLog.warnings} warning, ${serverLog.http5xx} HTTP 5xx, ${serverLog.httpIncomplete} incomplete HTTP, ${serverLog.rpcFailures} failed RPC line(s); first:\n${serverLog.samples.slice(0, 5).join("\n")}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

function mib(bytes: number | undefined): string {
  return bytes === undefined ? "n/a" : `${(bytes / MiB).toFixed(bytes >= 100 * MiB ? 0 : 1)} MiB`;
}

function table(results: RunResult[]): string {
  const header = ["store", "phase", "operation", "count", "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "MiB moved", "MiB verified"];
  const rows: string[][] = [];
  for (const r of results) {
    for (const p of r.phases.map((phase) => phase.summary())) {
      for (const o of p.ops) {
        rows.push([
          r.metadata,
          `${p.phase} (${p.seconds} s)`,
          o.op,
          String(o.count),
          o.opsPerSecond.toFixed(1),
          o.p50Ms.toFixed(1),
          o.p99Ms.toFixed(1),
          o.maxMs.toFixed(1),
          String(o.errors),
          (o.bytes / MiB).toFixed(1),
          (o.verifiedBytes / MiB).toFixed(1),
        ]);
      }
      if (p.phase === "small") {
        const total = p.ops.reduce((s, o) => s + o.count, 0);
        const errors = p.ops.reduce((s, o) => s + o.errors, 0);
        rows.push([r.metadata, `${p.phase} (${p.seconds} s)`, "ALL", String(total), (total / p.seconds).toFixed(1), "", "", "", String(errors), "", ""]);
      }
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const numeric = (i: number) => i >= 3;
  const fmt = (row: string[]) => row.map((cell, i) => (numeric(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ");
  const lines = [fmt(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(fmt)];
  lines.push("");
  for (const r of results) {
    const sl = r.serverLog;
    lines.push(
      `${r.metadata}: server RSS idle ${mib(r.idleRssBytes)}, peak (VmHWM) after the small mix ${mib(r.peakRssAfterSmallBytes)}, overall ${mib(r.peakRssBytes)}` +
        (sl ? `; server log: ${sl.lines} lines, ${sl.errors} error, ${sl.warnings} warning, ${sl.http5xx} HTTP 5xx, ${sl.rpcFailures} failed RPC` : "") +
        (r.bucketLeftovers ? `; bucket leftovers: ${r.bucketLeftovers.keys.length} objects, ${r.bucketLeftovers.uploads.length} multipart uploads` : ""),
    );
    const share = (c: CpuShare) => `client ${c.client ?? "?"}%, server ${c.server ?? "?"}%, moto ${c.moto ?? "n/a"}%`;
    if (Object.keys(r.cpu).length > 0) lines.push(`${r.metadata}: CPU in % of one core (${availableParallelism()} cores): ${Object.entries(r.cpu).map(([phase, c]) => `${phase}: ${share(c)}`).join("; ")}`);
  }
  return lines.join("\n");
}

function report(ctx: RunContext, startedAt: Date, outcome: string): object {
  for (const r of ctx.results) {
    // Stopped early: the server may still be up, so its peak so far can be read.
    if (r.peakRssBytes === undefined && r.serverPid !== undefined) {
      try {
        r.peakRssBytes = processMemory(r.serverPid, "VmHWM");
      } catch {
        /* gone */
      }
    }
  }
  console.log(`\n${table(ctx.results)}\n`);
  if (ctx.errors.total > 0) {
    console.log(`ERRORS: ${ctx.errors.total} in total; the first ${ctx.errors.kept.length}:`);
    for (const e of ctx.errors.kept) console.log(`  [${e.phase} +${e.at}s] ${e.op}: ${e.message}`);
  } else {
    console.log("errors: 0");
  }
  console.log(`outcome: ${outcome}`);
  return {
    startedAt: startedAt.toISOString(),
    seconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
    outcome,
    options: ctx.options,
    machine: { cpus: availableParallelism(), loadavg: loadavg(), node: process.version },
    s3: ctx.s3.external ? "external (S3_ENDPOINT)" : "moto (started by the load test)",
    runs: ctx.results.map((r) => ({ ...r, phases: r.phases.map((p) => p.summary()) })),
    errors: { total: ctx.errors.total, first: ctx.errors.kept },
  };
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  let options: Options | "help";
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${describe(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(USAGE);
    return 0;
  }
  const startedAt = new Date();
  const cleanup = new Cleanup();
  const ctx: RunContext = {
    options,
    s3: { endpoint: "", external: false, credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID || "test", secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "test" } },
    cleanup,
    errors: { total: 0, kept: [] },
    stop: { now: false },
    postgres: () => Promise.reject(new Error("unset")),
    results: [],
  };

  const finish = async (outcome: string, code: number): Promise<number> => {
    ctx.stop.now = true;
    const json = report(ctx, startedAt, outcome);
    if (options.json) {
      await writeFile(options.json, `${JSON.stringify(json, null, 2)}\n`);
      log(`wrote ${options.json}`);
    }
    await cleanup.runAll();
    return code;
  };

  // The hard deadline and signals: report what there is, tear everything down, exit 3.
  let finishing: Promise<number> | undefined;
  const abort = (why: string) => {
    if (finishing) return;
    console.error(`\n[load] ${why}: stopping, reporting what was measured, cleaning up`);
    finishing = finish(`stopped: ${why}`, 3);
    void finishing.then((code) => process.exit(code));
    // If clean-up itself hangs, leave anyway (the child guards kill what is left).
    setTimeout(() => process.exit(3), 90_000).unref();
  };
  setTimeout(() => abort(`hard deadline of ${options.timeoutMinutes} min reached`), options.timeoutMinutes * 60_000).unref();
  process.once("SIGINT", () => abort("SIGINT"));
  process.once("SIGTERM", () => abort("SIGTERM"));

  try {
    const external = process.env.S3_ENDPOINT;
    if (external) {
      ctx.s3.endpoint = external;
      ctx.s3.external = true;
    } else {
      log("starting moto...");
      const moto = await startMoto();
      cleanup.add("stop moto", () => moto.stop());
      ctx.s3.endpoint = moto.endpoint;
    }
    let pg: Promise<PostgresServer> | undefined;
    ctx.postgres = () => {
      pg ??= (async () => {
        log("starting PostgreSQL...");
        const server = await startPostgres();
        cleanup.add("stop PostgreSQL", () => server.stop());
        return server;
      })();
      return pg;
    };
    for (const metadata of options.metadata) {
      if (ctx.stop.now) break;
      await runOne(ctx, metadata);
    }
  } catch (err) {
    if (finishing) return await finishing;
    new Phase("setup", ctx.errors).error("setup", describe(err));
    return await finish("set-up failed", 2);
  }
  if (finishing) return await finishing;
  return await finish(ctx.errors.total === 0 ? "PASS (0 errors)" : `FAIL (${ctx.errors.total} errors)`, ctx.errors.total === 0 ? 0 : 1);
}

process.exitCode = await main();
// Lingering sockets or timers must not keep a finished run alive.
setTimeout(() => process.exit(), 2_000).unref();
