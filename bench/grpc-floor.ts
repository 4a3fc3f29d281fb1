/**
 * What one unary gRPC call costs a Node server before any of this service's code runs.
 *
 *   npm run bench:grpc-floor -- [--calls 5000] [--rounds 2]
 *
 * The same GetFile answer (a fixed, pre-encoded File) is served three ways, each by a fresh
 * child process on a loopback port:
 *  - h1-json:   node:http answering the File as JSON (what a REST retrieve costs before its own code);
 *  - h2-core:   node:http2's stream API, the envelope and trailers written by hand;
 *  - h2-compat: node:http2's request/response compatibility API (what connect-node is given);
 *  - fast-path: this service's gRPC fast path (src/transport/grpc) with a GetFile that returns at once;
 *  - connect:   connectNodeAdapter with a GetFile that returns the File at once.
 * One HTTP/2 session sends `--calls` sequential calls to each (after 300 warm-up calls) and reads
 * the answer; the table shows the server process's CPU per call (process.cpuUsage, sampled
 * around the measured calls) and the latency p50/p99 the client saw. Everything listens on
 * 127.0.0.1 and stops by itself.
 */
import { fork, type ChildProcess } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { FilePurpose, FilesService, GetFileRequestSchema, GetFileResponseSchema } from "../gen/ts/files/v1/files_pb.js";
import { grpcStreamRouter } from "../src/transport/grpc/grpc-stream-router.js";
import { latency } from "./stats.js";

const MODES = ["h1-json", "h2-core", "h2-compat", "fast-path", "connect"] as const;
const ONLY = process.env.GRPC_FLOOR_MODES?.split(",");
type Mode = (typeof MODES)[number];
const WARMUP_CALLS = 300;
const FILE = { id: "file-0123456789abcdef0123456789abcdef", bytes: 5n, createdAt: 1_700_000_000n, filename: "a.txt", purpose: FilePurpose.ASSISTANTS };

/** A gRPC length-prefixed message: flag byte 0 (not compressed), 4-byte length, the bytes. */
function envelope(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.byteLength);
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

function serve(mode: Mode): void {
  const answer = envelope(toBinary(GetFileResponseSchema, create(GetFileResponseSchema, { file: FILE })));
  let server: http2.Http2Server | http.Server;
  if (mode === "h1-json") {
    const json = JSON.stringify({ ...FILE, bytes: Number(FILE.bytes), createdAt: Number(FILE.createdAt) });
    server = http.createServer((req, res) => {
      req.resume();
      req.once("end", () => res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(json) }).end(json));
    });
  } else if (mode === "fast-path") {
    const streams = grpcStreamRouter(
      [{ service: FilesService, impl: { getFile: () => ({ file: FILE }) } }],
      { interceptors: [], readMaxBytes: 1 << 20, writeMaxBytes: 1 << 20, acceptCompression: [] },
      (err) => console.error(err),
    );
    server = http2.createServer();
    server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      if (!streams(stream, headers)) stream.close();
    });
  } else if (mode === "h2-core") {
    server = http2.createServer();
    server.on("stream", (stream: http2.ServerHttp2Stream) => {
      stream.resume();
      stream.once("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
        stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(answer);
      });
    });
  } else if (mode === "h2-compat") {
    server = http2.createServer((req, res) => {
      req.resume();
      req.once("end", () => {
        res.writeHead(200, { "content-type": "application/grpc+proto" });
        res.addTrailers({ "grpc-status": "0" });
        res.end(answer);
      });
    });
  } else {
    server = http2.createServer(connectNodeAdapter({ routes: (router) => router.rpc(FilesService.method.getFile, async () => ({ file: FILE })) }));
  }
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as { port: number }).port }));
  process.on("message", () => {
    const { user, system } = process.cpuUsage();
    process.send!({ cpuMicros: user + system });
  });
  // Never outlive the parent; exit (rather than die) on SIGTERM, so --cpu-prof writes its profile.
  process.on("disconnect", () => process.exit(0));
  process.on("SIGTERM", () => process.exit(0));
}

function ask<T>(child: ChildProcess, message?: string): Promise<T> {
  return new Promise((resolve) => {
    child.once("message", (m) => resolve(m as T));
    if (message !== undefined) child.send(message);
  });
}

type Call = () => Promise<void>;
type Result = { cpuMicrosPerCall: number; p50Ms: number; p99Ms: number };

/** Warm-up calls, then `calls` timed ones; the server's CPU is read around the timed calls. */
async function measureWith(child: ChildProcess, calls: number, call: Call): Promise<Result> {
  for (let i = 0; i < WARMUP_CALLS; i++) await call();
  const before = await ask<{ cpuMicros: number }>(child, "cpu");
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await call();
    samples.push(performance.now() - t0);
  }
  const after = await ask<{ cpuMicros: number }>(child, "cpu");
  const { p50Ms, p99Ms } = latency(samples);
  return { cpuMicrosPerCall: (after.cpuMicros - before.cpuMicros) / calls, p50Ms, p99Ms };
}

/** A keep-alive GET, as a REST client retrieves a file. */
function h1Call(port: number): Call {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return () =>
    new Promise<void>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path: `/v1/files/${FILE.id}`, agent }, (res) => {
          res.resume();
          res.once("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`h1-json: HTTP ${res.statusCode}`))));
        })
        .once("error", reject);
    });
}

function grpcCall(session: http2.ClientHttp2Session, mode: Mode): Call {
  const request = envelope(toBinary(GetFileRequestSchema, create(GetFileRequestSchema, { fileId: FILE.id })));
  return () =>
    new Promise<void>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": `/${FilesService.typeName}/GetFile`, "content-type": "application/grpc+proto", te: "trailers" });
      let status: string | undefined;
      stream.on("trailers", (t) => (status = String(t["grpc-status"])));
      stream.resume();
      stream.once("close", () => (status === "0" ? resolve() : reject(new Error(`${mode}: grpc-status ${status ?? "missing"}`))));
      stream.once("error", reject);
      stream.end(request);
    });
}

async function measure(mode: Mode, calls: number): Promise<Result> {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", mode], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    const { port } = await ask<{ port: number }>(child);
    if (mode === "h1-json") return await measureWith(child, calls, h1Call(port));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      return await measureWith(child, calls, grpcCall(session, mode));
    } finally {
      session.close();
    }
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { calls: { type: "string", default: "5000" }, rounds: { type: "string", default: "2" }, serve: { type: "string" } },
  });
  if (values.serve) return serve(values.serve as Mode);
  const calls = Number(values.calls);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(calls) || calls < 100 || !Number.isInteger(rounds) || rounds < 1) throw new Error("--calls must be an integer ≥ 100 and --rounds ≥ 1");
  console.log(`unary GetFile, ${calls} sequential calls per server, ${rounds} round(s); server CPU per call and client-seen latency`);
  console.log("server      round  CPU µs/call  p50 ms  p99 ms");
  for (let round = 1; round <= rounds; round++) {
    for (const mode of MODES.filter((m) => !ONLY || ONLY.includes(m))) {
      const r = await measure(mode, calls);
      console.log(`${mode.padEnd(10)}  ${String(round).padStart(5)}  ${r.cpuMicrosPerCall.toFixed(0).padStart(11)}  ${r.p50Ms.toFixed(3).padStart(6)}  ${r.p99Ms.toFixed(3).padStart(6)}`);
    }
  }
}

await main();
