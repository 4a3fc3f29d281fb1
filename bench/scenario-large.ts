/**
 * Large upload and download, one transfer at a time, for each size:
 *  - direct S3, two ways: one streamed PutObject, and lib-storage's multipart Upload with the
 *    service's part size and concurrency; then a streamed GetObject. The faster upload of the two
 *    is the ceiling the service is measured against;
 *  - this service over gRPC (client streaming / server streaming: connect-node, and grpc-js,
 *    grpc-go or grpcio when selected), REST multipart (POST /v1/files, GET /content) over HTTP/1.1
 *    and HTTP/2, and the Uploads API (8 MiB parts, 4 in flight, complete);
 *  - the floor: a bare node:http server storing the body on the same store (floor-server.ts);
 *  - the reference over its REST API (POST /v1/files, GET /content).
 * Every download is hashed as it arrives and must match the payload's SHA-256.
 * Each server target runs on a fresh server process (see harness.ts for the memory method), and
 * its CPU (utime + stime) is read right before and after the upload and again around the download,
 * so each transfer also says what it cost the server per GiB.
 */
import { connectGrpcClient, directS3Client, grpcJsBenchClient, type BenchClient } from "./clients.js";
import { floorBenchClient } from "./floor-client.js";
import { ForeignClient } from "./foreign-clients.js";
import { attempt, kindOf, log, MemoryProbe, mib, withServer, type Context, type Memory } from "./harness.js";
import { withTimeout } from "./lifecycle.js";
import { uploadsApiClient } from "./openai-rest.js";
import { formatSize, type Target } from "./options.js";
import { MiB, Payload } from "./payload.js";
import { cpuStopwatch, peakRssBytes, resetPeakRss, rssBytes } from "./proc.js";
import { restBenchClient } from "./rest-client.js";
import { RestH2 } from "./rest-h2-client.js";
import type { S3Target } from "./s3.js";

export type LargeTarget = "direct-put" | "direct-multipart" | Exclude<Target, "direct">;

export interface TransferResult {
  sizeBytes: number;
  target: LargeTarget;
  runs: number;
  /** Best of the runs. */
  uploadMiBps: number;
  downloadMiBps: number;
  uploadSeconds: number;
  downloadSeconds: number;
  sha256Verified: true;
  /** Server targets only: the server's CPU seconds (utime + stime) per GiB moved, least of the runs. */
  uploadCpuSecPerGiB: number | null;
  downloadCpuSecPerGiB: number | null;
  /** Server targets only. */
  memory: Memory | null;
  /**
   * Clients in a process of their own (grpcgo, grpcio, tslib...): their RSS after the warm-up
   * and their peak (VmHWM, reset after the warm-up when peakReset) over the measured runs.
   */
  clientMemory?: { idleRssBytes: number; peakRssBytes: number; growthBytes: number; peakReset: boolean };
}

const GiB = 1024 * MiB;
const WARMUP_BYTES = MiB;

/** Generous per-transfer bound: two minutes plus one second per MiB. */
const transferTimeoutMs = (bytes: number) => 120_000 + (bytes / MiB) * 1000;

function s3Target(ctx: Context): S3Target {
  return { ...ctx.s3, bucket: ctx.buckets.direct };
}

/** Targets measured on the TLS port too, with --tls. */
export const TLS_TARGETS = ["grpc", "grpcjs", "grpcgo", "grpcio", "rest", "resth2", "uploads"] as const;
export type TlsTarget = (typeof TLS_TARGETS)[number];
export const isTlsTarget = (t: string): t is TlsTarget => (TLS_TARGETS as readonly string[]).includes(t);

/** A client of `target` at `baseUrl`; an https:// one trusts the run's CA (--tls). */
function clientFor(ctx: Context, target: LargeTarget, baseUrl: string): BenchClient {
  const ca = baseUrl.startsWith("https:") ? ctx.tls?.ca : undefined;
  switch (target) {
    case "direct-put":
      return directS3Client(s3Target(ctx), "put");
    case "direct-multipart":
      return directS3Client(s3Target(ctx), "multipart");
    case "grpc":
      return connectGrpcClient(baseUrl, false, ca);
    case "grpcjs":
      return grpcJsBenchClient(baseUrl, ca);
    case "grpcgo":
    case "grpcio":
    case "tslib":
    case "tslibstream":
    case "golib":
    case "golibstream":
    case "pylib":
    case "pylibstream":
      return new ForeignClient(target, ctx.foreignClients, baseUrl, ctx.tls?.caFile);
    case "rest":
    case "llama":
      return restBenchClient(baseUrl, ca);
    case "resth2":
      return new RestH2(baseUrl, ca);
    case "uploads":
      return uploadsApiClient(baseUrl, ca);
    case "floor":
      return floorBenchClient(baseUrl);
  }
}

interface Timed {
  uploadSeconds: number;
  downloadSeconds: number;
  /** The server's CPU seconds over each; null without a server process. */
  uploadCpuSeconds: number | null;
  downloadCpuSeconds: number | null;
}

/** One upload, one verified download, one delete; timed, with the server's CPU (pid) read around each. */
async function transfer(client: BenchClient, payload: Payload, sha256: string, label: string, pid: number | undefined): Promise<Timed> {
  const limit = transferTimeoutMs(payload.bytes);
  const cpu = () => (pid === undefined ? () => null : cpuStopwatch(pid));
  let serverCpu = cpu();
  let t0 = performance.now();
  const up = await withTimeout(client.upload(payload, sha256), limit, `${label} upload`);
  const uploadSeconds = (performance.now() - t0) / 1000;
  const uploadCpuSeconds = serverCpu();
  if (up.bytes !== payload.bytes) throw new Error(`${label}: stored ${up.bytes} bytes, sent ${payload.bytes}`);
  serverCpu = cpu();
  t0 = performance.now();
  const down = await withTimeout(client.download(up.id), limit, `${label} download`);
  const downloadSeconds = (performance.now() - t0) / 1000;
  const downloadCpuSeconds = serverCpu();
  if (down.bytes !== payload.bytes || down.sha256 !== sha256) {
    throw new Error(`${label}: downloaded ${down.bytes} bytes with SHA-256 ${down.sha256}, sent ${payload.bytes} bytes with ${sha256}`);
  }
  await withTimeout(client.remove(up.id), 60_000, `${label} delete`); // keeps moto's in-memory store small
  return { uploadSeconds, downloadSeconds, uploadCpuSeconds, downloadCpuSeconds };
}

/** Least of the CPU figures (null when there is none), as the best run's time is the least. */
const leastCpu = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b));
const perGiB = (seconds: number | null, bytes: number) => (seconds === null ? null : seconds / (bytes / GiB));

async function measure(ctx: Context, target: LargeTarget, payload: Payload, sha256: string, baseUrl: string, probe: MemoryProbe | undefined) {
  const label = `${target}${baseUrl.startsWith("https:") ? " (TLS)" : ""} ${formatSize(payload.bytes)}`;
  const client = clientFor(ctx, target, baseUrl);
  try {
    if (probe) {
      const warm = new Payload(WARMUP_BYTES);
      await transfer(client, warm, warm.sha256(), `${label} warm-up`, undefined);
      probe.begin();
    }
    const clientPid = client instanceof ForeignClient ? client.pid : undefined;
    const clientReset = clientPid !== undefined && resetPeakRss(clientPid);
    const clientIdle = clientPid === undefined ? 0 : rssBytes(clientPid);
    let best: Timed = { uploadSeconds: Infinity, downloadSeconds: Infinity, uploadCpuSeconds: null, downloadCpuSeconds: null };
    for (let run = 1; run <= ctx.options.runs; run++) {
      const t = await transfer(client, payload, sha256, label, probe?.server.pid);
      best = {
        uploadSeconds: Math.min(best.uploadSeconds, t.uploadSeconds),
        downloadSeconds: Math.min(best.downloadSeconds, t.downloadSeconds),
        uploadCpuSeconds: leastCpu(best.uploadCpuSeconds, t.uploadCpuSeconds),
        downloadCpuSeconds: leastCpu(best.downloadCpuSeconds, t.downloadCpuSeconds),
      };
    }
    const memory = probe ? probe.end() : null;
    const clientPeak = clientPid === undefined ? 0 : peakRssBytes(clientPid);
    const result: TransferResult = {
      sizeBytes: payload.bytes,
      target,
      runs: ctx.options.runs,
      uploadMiBps: payload.bytes / MiB / best.uploadSeconds,
      downloadMiBps: payload.bytes / MiB / best.downloadSeconds,
      uploadSeconds: best.uploadSeconds,
      downloadSeconds: best.downloadSeconds,
      sha256Verified: true,
      uploadCpuSecPerGiB: perGiB(best.uploadCpuSeconds, payload.bytes),
      downloadCpuSecPerGiB: perGiB(best.downloadCpuSeconds, payload.bytes),
      memory,
      ...(clientPid !== undefined && { clientMemory: { idleRssBytes: clientIdle, peakRssBytes: clientPeak, growthBytes: clientPeak - clientIdle, peakReset: clientReset } }),
    };
    const clientMem = result.clientMemory ? `, client RSS ${mib(result.clientMemory.idleRssBytes)} → peak ${mib(result.clientMemory.peakRssBytes)} MiB` : "";
    const mem = memory ? `, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB` : "";
    const cpu = result.uploadCpuSecPerGiB === null ? "" : `, server CPU up ${result.uploadCpuSecPerGiB.toFixed(2)} / down ${result.downloadCpuSecPerGiB?.toFixed(2)} s/GiB`;
    log(`large ${label}: up ${result.uploadMiBps.toFixed(1)} MiB/s, down ${result.downloadMiBps.toFixed(1)} MiB/s${cpu}${mem}${clientMem}`);
    return result;
  } finally {
    client.close();
  }
}

export interface SkippedTransfer {
  target: LargeTarget;
  sizeBytes: number;
  reason: string;
}

/**
 * The reference refuses uploads above its fixed limit (413). It is measured at each requested size
 * it accepts and, when a requested size is over the limit, also at exactly the limit, so the chart
 * still shows how its memory follows file size; the refused sizes are listed as skipped.
 */
export async function runLarge(ctx: Context): Promise<{ results: TransferResult[]; skipped: SkippedTransfer[]; tls: TransferResult[] }> {
  const results: TransferResult[] = [];
  /** With --tls: the same targets on the TLS port, each measured right after its plaintext run. */
  const tls: TransferResult[] = [];
  const skipped: SkippedTransfer[] = [];
  const targets: LargeTarget[] = [];
  for (const t of ctx.options.targets) {
    if (t === "direct") targets.push("direct-put", "direct-multipart");
    else targets.push(t);
  }
  const requested = ctx.options.sizes;
  const referenceLimit = ctx.referenceMaxUploadBytes;
  const extra = targets.includes("llama") && requested.some((s) => s > referenceLimit) && !requested.includes(referenceLimit) ? [referenceLimit] : [];
  const sizes = [...requested, ...extra].sort((a, b) => a - b);
  for (const size of sizes) {
    const mine = targets.filter((t) => (t === "llama" ? size <= referenceLimit : requested.includes(size)));
    for (const t of targets) {
      if (t === "llama" && size > referenceLimit) {
        skipped.push({ target: t, sizeBytes: size, reason: `the reference refuses uploads over ${formatSize(referenceLimit)} (413; fixed in llama-stack's files router); measured at ${formatSize(referenceLimit)} instead` });
      }
    }
    if (mine.length === 0) continue;
    const payload = new Payload(size);
    const sha256 = payload.sha256();
    log(`large: ${formatSize(size)}${extra.includes(size) ? " (the reference's upload limit)" : ""}, SHA-256 ${sha256.slice(0, 16)}…`);
    for (const target of mine) {
      const kind = kindOf(target === "direct-put" || target === "direct-multipart" ? "direct" : target);
      const result = await attempt(ctx, `large ${target} ${formatSize(size)}`, () =>
        kind === "direct"
          ? measure(ctx, target, payload, sha256, "", undefined)
          : withServer(ctx, kind, "transfers", `large ${target} ${formatSize(size)}`, (server) =>
              measure(ctx, target, payload, sha256, server.baseUrl, new MemoryProbe(server)),
            ),
      );
      if (result) results.push(result);
      if (ctx.tls && isTlsTarget(target)) {
        const label = `large ${target} ${formatSize(size)} over TLS`;
        const overTls = await attempt(ctx, label, () =>
          withServer(ctx, "service", "transfers", label, (server) => measure(ctx, target, payload, sha256, server.baseUrl, new MemoryProbe(server)), true),
        );
        if (overTls) tls.push(overTls);
      }
    }
  }
  return { results, skipped, tls };
}
