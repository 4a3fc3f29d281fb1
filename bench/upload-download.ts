/**
 * Upload/download throughput of the Files service (gRPC streaming and REST multipart) against
 * direct S3, plus server memory.
 *
 *   npm run bench:transfer -- [--size-mib 256] [--runs 2] [--grpc-js] [--identity] [--direct-multipart]
 *
 * The baseline is one streamed PutObject and a GetObject with the AWS SDK; --direct-multipart
 * uploads it with lib-storage instead, with the server's part size and concurrency.
 * --grpc-js adds the @grpc/grpc-js client; --identity adds a connect-node client that accepts
 * no compression (the server never compresses responses; kept to show that).
 *
 * S3 is `S3_BENCH_ENDPOINT` (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else
 * test/test; region from S3_BENCH_REGION, else us-east-1), or a moto server started here.
 * The real server runs as a child process (SQLite metadata in a temp dir, default part size
 * and concurrency). Each run moves the same deterministic payload through every path in turn;
 * the table shows the best run per path, and the ratio service/direct measured in this process
 * on this machine. Figures also go to bench/results/transfer-latest.json.
 *
 * A transfer diagnostic (client variants, repeated runs, RSS timelines); the full benchmark with
 * every scenario and the reference is bench/run.ts (`npm run bench`).
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { guardChildProcess, startMoto, waitForExit } from "../test/support/moto.js";
import { REPO_ROOT, startServer, type ServerProcess } from "../test/support/server-process.js";
import { CHUNK_SIZE, connectGrpcClient, directS3Client, grpcJsBenchClient, type BenchClient } from "./clients.js";
import { createBucket, PART_SIZE, QUEUE_SIZE, type S3Target } from "./s3.js";
import { MiB, Payload } from "./payload.js";
import { restBenchClient } from "./rest-client.js";
import { cpuSeconds, findProcess, peakRssBytes, rssBytes, RssSampler, verifyNodeProcess } from "./proc.js";
import { formatReport, summarize, type MemoryReport, type Operation, type Path, type Sample } from "./report.js";
import { Cleanup } from "./lifecycle.js";
import { writeServiceConfig } from "./servers.js";

const HARD_TIMEOUT_MS = 15 * 60_000;
const WARMUP_BYTES = 16 * MiB;
// Not latest.json: that is the full harness's (bench/run.ts).
const RESULTS_FILE = resolve(REPO_ROOT, "bench/results/transfer-latest.json");

interface Options {
  sizeMiB: number;
  runs: number;
  grpcJs: boolean;
  identity: boolean;
  /** Baseline upload: one streamed PutObject (default) or lib-storage multipart. */
  direct: "put" | "multipart";
}

function parseOptions(): Options {
  // The project needs Node 22+ (engines); an older `node` on PATH fails later and less clearly.
  if (Number(process.versions.node.split(".")[0]) < 22) throw new Error(`Node 22 or newer is required, this is ${process.version}`);
  const { values } = parseArgs({
    options: {
      "size-mib": { type: "string", default: "256" },
      runs: { type: "string", default: "2" },
      "grpc-js": { type: "boolean", default: false },
      identity: { type: "boolean", default: false },
      "direct-multipart": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log("usage: npm run bench:transfer -- [--size-mib N (default 256)] [--runs N (default 2)] [--grpc-js] [--identity] [--direct-multipart]");
    process.exit(0);
  }
  const sizeMiB = Number(values["size-mib"]);
  const runs = Number(values.runs);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1) throw new Error(`--size-mib must be a positive integer, got ${values["size-mib"]}`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);
  return { sizeMiB, runs, grpcJs: values["grpc-js"], identity: values.identity, direct: values["direct-multipart"] ? "multipart" : "put" };
}

const cleanup = new Cleanup();
/** The server's log lines, shown when the benchmark fails. */
let serverOutput: string[] = [];
const log = (msg: string) => console.log(`[bench] ${msg}`);

/** Stops the server with SIGTERM (its graceful shutdown), escalating to SIGKILL after 10 s. */
async function stopServer(server: ServerProcess): Promise<void> {
  const exited = server.stop("SIGTERM");
  if (!(await waitForExit(server.child, 10_000))) {
    server.child.kill("SIGKILL");
    await waitForExit(server.child, 5_000);
  }
  const code = await Promise.race([exited, sleep(1_000, "unknown")]);
  if (code !== 0) log(`server exited with ${String(code)}`);
}

async function s3Endpoint(): Promise<{ endpoint: string; s3Pid: number | undefined; kind: string }> {
  const external = process.env.S3_BENCH_ENDPOINT;
  if (external) return { endpoint: external, s3Pid: undefined, kind: "S3_BENCH_ENDPOINT" };
  log("starting moto...");
  const moto = await startMoto();
  cleanup.add("stop moto", () => moto.stop());
  const port = new URL(moto.endpoint).port;
  return { endpoint: moto.endpoint, s3Pid: findProcess(["moto_server", "-p", port]), kind: "moto (started here)" };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const started = Date.now();

  const payload = new Payload(options.sizeMiB * MiB);
  const sha256 = payload.sha256();
  log(`payload: ${options.sizeMiB} MiB, sha256 ${sha256}`);

  const { endpoint, s3Pid, kind } = await s3Endpoint();
  const target: S3Target = {
    endpoint,
    region: process.env.S3_BENCH_REGION || "us-east-1",
    bucket: `files-bench-${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
    accessKeyId: process.env.AWS_ACCESS_KEY_ID || "test",
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "test",
  };
  await createBucket(target);
  log(`S3: ${kind} at ${endpoint}, bucket ${target.bucket}${s3Pid ? `, S3 pid ${s3Pid}` : ""}`);

  const dir = await mkdtemp(join(tmpdir(), "files-bench-"));
  cleanup.add("remove temp dir", () => rm(dir, { recursive: true, force: true }));
  // The config file goes in our temp dir (startServer's `config` would leave a dir of its own behind);
  // max_file_bytes makes room for --size-mib beyond the 512 MiB default limit.
  const configPath = await writeServiceConfig(dir, target, target.bucket, join(dir, "files.db"), Math.max(512, options.sizeMiB) * MiB);
  const server = await startServer({ args: ["--config", configPath] });
  serverOutput = server.output;
  const pid = server.child.pid!;
  const guard = guardChildProcess(pid, { exitSignal: "SIGKILL" }); // never outlive the bench, even on a crash
  cleanup.add("stop server", async () => {
    await stopServer(server);
    guard.release();
  });
  const idleRssBytes = rssBytes(pid);
  verifyNodeProcess(pid, "dist/src/main.js");
  log(`server: pid ${pid} (verified: the node process itself, no children) at ${server.baseUrl}, idle RSS ${(idleRssBytes / MiB).toFixed(1)} MiB`);

  log(`baseline: ${options.direct === "put" ? "one streamed PutObject" : "lib-storage multipart Upload"}, then GetObject`);
  const clients: [Path, BenchClient][] = [
    ["direct", directS3Client(target, options.direct)],
    ["connect", connectGrpcClient(server.baseUrl)],
    ["rest", restBenchClient(server.baseUrl)],
  ];
  if (options.grpcJs) clients.push(["grpcJs", grpcJsBenchClient(server.baseUrl)]);
  if (options.identity) clients.push(["connectIdentity", connectGrpcClient(server.baseUrl, true)]);
  cleanup.add("close clients", async () => clients.forEach(([, c]) => c.close()));

  // Warm-up (not measured): connections, JIT, lazily loaded modules, the first SQLite write.
  const warm = new Payload(WARMUP_BYTES);
  const warmSha = warm.sha256();
  for (const [, client] of clients) {
    const { id } = await client.upload(warm, warmSha);
    const got = await client.download(id);
    if (got.sha256 !== warmSha) throw new Error(`${client.name}: warm-up download does not match`);
    await client.remove(id);
  }
  const afterWarmupRssBytes = rssBytes(pid);

  const sampler = new RssSampler(pid);
  const samples: Sample[] = [];

  /** Times one transfer, with the CPU each process used meanwhile. */
  async function measure<T extends { bytes: number; chunks?: number }>(run: number, path: Path, operation: Operation, fn: () => Promise<T>) {
    const service = path !== "direct";
    const cpu0 = { client: process.cpuUsage(), server: cpuSeconds(pid), s3: s3Pid ? cpuSeconds(s3Pid) : 0 };
    if (service) sampler.start();
    const t0 = performance.now();
    let result: T;
    let seconds: number;
    let serverPeakRssBytes: number | null = null;
    try {
      result = await fn();
      seconds = (performance.now() - t0) / 1000;
    } finally {
      if (service) serverPeakRssBytes = sampler.stop();
    }
    const clientCpu = process.cpuUsage(cpu0.client);
    const sample: Sample = {
      run,
      path,
      operation,
      bytes: result.bytes,
      seconds,
      mibPerSecond: result.bytes / MiB / seconds,
      chunks: result.chunks ?? null,
      cores: {
        client: (clientCpu.user + clientCpu.system) / 1e6 / seconds,
        server: (cpuSeconds(pid) - cpu0.server) / seconds,
        s3: s3Pid ? (cpuSeconds(s3Pid) - cpu0.s3) / seconds : null,
      },
      serverPeakRssBytes,
      serverRssTimeline: service ? sampler.timeline.map(([ms, rss]) => [ms, Math.round((rss / MiB) * 10) / 10]) : null,
    };
    samples.push(sample);
    const perChunk = sample.chunks ? `, ${sample.chunks} chunks of ${(result.bytes / sample.chunks / 1024).toFixed(0)} KiB avg` : "";
    log(`run ${run} ${operation.padEnd(8)} ${path.padEnd(15)} ${sample.mibPerSecond.toFixed(1).padStart(7)} MiB/s (${seconds.toFixed(2)} s${perChunk})`);
    return result;
  }

  for (let run = 1; run <= options.runs; run++) {
    for (const [path, client] of clients) {
      const up = await measure(run, path, "upload", () => client.upload(payload, sha256));
      if (up.bytes !== payload.bytes) throw new Error(`${client.name}: stored ${up.bytes} bytes, sent ${payload.bytes}`);
      if (up.sha256 !== undefined && up.sha256 !== sha256) throw new Error(`${client.name}: the service reports sha256 ${up.sha256}, sent ${sha256}`);
      const down = await measure(run, path, "download", () => client.download(up.id));
      if (down.bytes !== payload.bytes || down.sha256 !== sha256) {
        throw new Error(`${client.name}: downloaded ${down.bytes} bytes with sha256 ${down.sha256}, expected ${payload.bytes} bytes with ${sha256}`);
      }
      await client.remove(up.id); // keep moto's (in-memory) store small
    }
  }

  const peak = peakRssBytes(pid);
  const memory: MemoryReport = {
    pid,
    idleRssBytes,
    afterWarmupRssBytes,
    peakRssBytes: peak,
    growthBytes: peak - idleRssBytes,
    endRssBytes: rssBytes(pid),
    samples: sampler.samples,
  };
  const summaries = summarize(samples);

  console.log("");
  console.log(formatReport(summaries, memory, options.runs));
  console.log("");
  console.log("All downloads matched the source SHA-256.");

  await mkdir(resolve(RESULTS_FILE, ".."), { recursive: true });
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    s3: kind,
    config: {
      payloadBytes: payload.bytes,
      runs: options.runs,
      reported: "best (highest MiB/s) of the runs; median also given",
      partSizeBytes: PART_SIZE,
      queueSize: QUEUE_SIZE,
      chunkBytes: CHUNK_SIZE,
      metadataStore: "sqlite",
    },
    sha256,
    summary: summaries,
    memory,
    samples,
    elapsedSeconds: (Date.now() - started) / 1000,
  };
  await writeFile(RESULTS_FILE, JSON.stringify(results, null, 2) + "\n");
  log(`results written to ${RESULTS_FILE}`);
}

// Hard limit on the whole run: abort, clean up and fail. Kept referenced on purpose, so that a
// stall with nothing else pending ends here with exit 1 rather than a silent exit 0.
setTimeout(() => {
  console.error(`[bench] aborting: not finished after ${HARD_TIMEOUT_MS / 60_000} min`);
  void fail();
}, HARD_TIMEOUT_MS);

async function fail(): Promise<never> {
  setTimeout(() => process.exit(1), 30_000).unref(); // should clean-up itself hang
  await cleanup.run();
  process.exit(1);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`[bench] ${signal}: stopping`);
    void fail();
  });
}

main().then(
  async () => {
    await cleanup.run();
    process.exit(0);
  },
  async (err: unknown) => {
    console.error(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    if (serverOutput.length > 0) console.error(`--- last server log lines ---\n${serverOutput.slice(-20).join("\n")}`);
    await fail();
  },
);
