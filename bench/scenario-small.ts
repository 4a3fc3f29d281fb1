/**
 * Small files: 4 KiB uploads (fresh random bytes each) in a closed loop at each concurrency level
 * (1, 16, 64 by default), each level for a fixed time or operation count, whichever ends first:
 * direct S3 PutObject, this service over gRPC (UploadFile: metadata + one chunk; connect-node, and
 * @grpc/grpc-js, grpc-go or grpcio when selected; the last two run the loop inside their own
 * process) and REST (POST /v1/files), and the reference over REST. The Uploads API is not a
 * small-file path (three requests per file) and is left out, as are REST over HTTP/2 and the floor
 * (large-transfer targets). Each target runs on one fresh server process; the peak RSS is reset
 * between levels, and the server's CPU per upload is read over each level.
 */
import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { FilePurpose } from "../gen/ts/files/v1/files_pb.js";
import { connectFilesClient, grpcJsFilesClient } from "./clients.js";
import { ForeignClient, type LoopRun } from "./foreign-clients.js";
import { attempt, kindOf, log, MemoryProbe, mib, withServer, type Context, type Memory } from "./harness.js";
import { withTimeout } from "./lifecycle.js";
import { OpenAiRest } from "./openai-rest.js";
import type { Target } from "./options.js";
import { cpuStopwatch } from "./proc.js";
import { s3Client } from "./s3.js";
import { latency, type Latency } from "./stats.js";

export const SMALL_FILE_BYTES = 4096;
const WARMUP_OPS = 32;

/** Targets with a small-file path. */
const SMALL_TARGETS = ["direct", "grpc", "grpcjs", "grpcgo", "grpcio", "rest", "llama"] as const;

export interface SmallResult {
  target: (typeof SMALL_TARGETS)[number];
  concurrency: number;
  ops: number;
  errors: number;
  firstError: string | null;
  seconds: number;
  opsPerSecond: number;
  latency: Latency;
  /** The server's CPU (utime + stime) over the level, per successful upload; null for direct S3. */
  cpuMsPerUpload: number | null;
  memory: Memory | null;
}

type Op = (data: Buffer, n: number) => Promise<unknown>;

/** A level's successful uploads' latencies, and the failures. */
type SmallRun = LoopRun & { errors: number; firstError: string | null };

/** A target's closed loop: `run` uploads with `concurrency` in flight for `seconds` or `maxOps` uploads. */
interface Loop {
  run(concurrency: number, seconds: number, maxOps: number): Promise<SmallRun>;
  close(): void;
}

/** `concurrency` workers issue `op` back to back until `seconds` pass or `maxOps` have started. */
async function closedLoop(op: Op, concurrency: number, seconds: number, maxOps: number): Promise<SmallRun> {
  const samplesMs: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const worker = async () => {
    while (performance.now() < deadline && started < maxOps) {
      const n = started++;
      const data = randomBytes(SMALL_FILE_BYTES);
      const s = performance.now();
      try {
        await withTimeout(op(data, n), 60_000, "small upload");
        samplesMs.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  return { samplesMs, errors, firstError, seconds: elapsed };
}

/** The UploadFile metadata of small upload number `n`. */
function smallMetadata(data: Uint8Array, n: number) {
  return { filename: `small-${n}.bin`, purpose: FilePurpose.ASSISTANTS, mimeType: "application/octet-stream", sizeBytes: BigInt(data.length) };
}

/** The loop of `target`: the foreign clients run it themselves, the others in this process around `makeOp`'s op. */
function makeLoop(ctx: Context, target: SmallResult["target"], baseUrl: string): Loop {
  if (target === "grpcgo" || target === "grpcio") {
    const client = new ForeignClient(target, ctx.foreignClients, baseUrl, ctx.tls?.caFile);
    return { run: (concurrency, seconds, maxOps) => client.small(concurrency, seconds, maxOps, SMALL_FILE_BYTES), close: () => client.close() };
  }
  const { op, close } = makeOp(ctx, target, baseUrl);
  return { run: (concurrency, seconds, maxOps) => closedLoop(op, concurrency, seconds, maxOps), close };
}

function makeOp(ctx: Context, target: Exclude<SmallResult["target"], "grpcgo" | "grpcio">, baseUrl: string): { op: Op; close: () => void } {
  const maxConcurrency = Math.max(...ctx.options.smallConcurrency);
  const ca = baseUrl.startsWith("https:") ? ctx.tls?.ca : undefined;
  switch (target) {
    case "direct": {
      const s3 = s3Client({ ...ctx.s3, bucket: ctx.buckets.direct }, maxConcurrency);
      const prefix = `small/${Date.now().toString(36)}`;
      return {
        op: (data, n) => s3.send(new PutObjectCommand({ Bucket: ctx.buckets.direct, Key: `${prefix}/${n}.bin`, Body: data, ContentLength: data.length })),
        close: () => s3.destroy(),
      };
    }
    case "grpc": {
      const { client, close } = connectFilesClient(baseUrl, false, ca);
      return {
        op: async (data, n) => {
          const res = await client.uploadFile(
            (async function* () {
              yield {
                payload: { case: "metadata" as const, value: smallMetadata(data, n) },
              };
              yield { payload: { case: "chunk" as const, value: data } };
            })(),
          );
          if (Number(res.file?.bytes) !== data.length) throw new Error(`UploadFile stored ${res.file?.bytes} bytes, sent ${data.length}`);
        },
        close,
      };
    }
    case "grpcjs": {
      const client = grpcJsFilesClient(baseUrl, ca);
      return {
        op: async (data, n) => {
          const file = await client.uploadFile([
            { payload: { case: "metadata", value: smallMetadata(data, n) } },
            { payload: { case: "chunk", value: data } },
          ]);
          if (Number(file.bytes) !== data.length) throw new Error(`UploadFile stored ${file.bytes} bytes, sent ${data.length}`);
        },
        close: () => client.close(),
      };
    }
    case "rest":
    case "llama": {
      const api = new OpenAiRest(baseUrl, maxConcurrency, ca);
      return {
        op: async (data, n) => {
          const file = await api.uploadSmall(data, `small-${n}.bin`);
          if (file.bytes !== data.length) throw new Error(`POST /v1/files stored ${file.bytes} bytes, sent ${data.length}`);
        },
        close: () => api.close(),
      };
    }
  }
}

async function measureTarget(ctx: Context, target: SmallResult["target"], baseUrl: string, probe: MemoryProbe | undefined): Promise<SmallResult[]> {
  const loop = makeLoop(ctx, target, baseUrl);
  const results: SmallResult[] = [];
  try {
    // Failed uploads are this service's defects, and fail the run. The reference's are its own
    // behaviour (0.7.3 answers some concurrent uploads with 500, from its SQLite store): they are
    // reported in the errors column, and only successful uploads count towards its ops/s.
    const isReference = target === "llama";
    const warm = await loop.run(4, 60, WARMUP_OPS);
    if (warm.errors > 0) {
      const message = `warm-up: ${warm.errors} of ${WARMUP_OPS} uploads failed, first: ${warm.firstError}`;
      if (!isReference || warm.samplesMs.length === 0) throw new Error(message);
      log(`small ${target}: ${message} (the reference's own errors: counted, not fatal)`);
    }
    for (const concurrency of ctx.options.smallConcurrency) {
      probe?.begin();
      const serverCpu = probe ? cpuStopwatch(probe.server.pid) : undefined;
      const run = await loop.run(concurrency, ctx.options.smallSeconds, ctx.options.smallMaxOps);
      const cpuSeconds = serverCpu?.();
      const memory = probe ? probe.end() : null;
      if (run.samplesMs.length === 0) throw new Error(`concurrency ${concurrency}: every upload failed, first: ${run.firstError}`);
      const result: SmallResult = {
        target,
        concurrency,
        ops: run.samplesMs.length,
        errors: run.errors,
        firstError: run.firstError,
        seconds: run.seconds,
        opsPerSecond: run.samplesMs.length / run.seconds,
        latency: latency(run.samplesMs),
        cpuMsPerUpload: cpuSeconds === undefined ? null : (cpuSeconds * 1000) / run.samplesMs.length,
        memory,
      };
      results.push(result);
      const mem = memory ? `, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB` : "";
      const cpu = result.cpuMsPerUpload === null ? "" : `, server CPU ${result.cpuMsPerUpload.toFixed(2)} ms/upload`;
      const errs = run.errors > 0 ? `, ${run.errors} ERRORS (first: ${run.firstError})` : "";
      if (run.errors > 0 && !isReference) ctx.errors.push(`small ${target} c=${concurrency}: ${run.errors} uploads failed, first: ${run.firstError}`);
      log(
        `small ${target}${baseUrl.startsWith("https:") ? " (TLS)" : ""} c=${concurrency}: ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latency.p50Ms.toFixed(1)} ms, p99 ${result.latency.p99Ms.toFixed(1)} ms${cpu}${mem}${errs}`,
      );
    }
    return results;
  } finally {
    loop.close();
  }
}

const isSmallTarget = (t: Target): t is SmallResult["target"] => (SMALL_TARGETS as readonly string[]).includes(t);

/** Small-file targets measured on the TLS port too, with --tls. */
const SMALL_TLS_TARGETS: readonly SmallResult["target"][] = ["grpc", "grpcjs", "grpcgo", "grpcio", "rest"];

export async function runSmall(ctx: Context): Promise<{ results: SmallResult[]; tls: SmallResult[] }> {
  const results: SmallResult[] = [];
  /** With --tls: the same loops against the TLS port, each right after its plaintext run. */
  const tls: SmallResult[] = [];
  for (const target of ctx.options.targets) {
    if (!isSmallTarget(target)) continue;
    const kind = kindOf(target);
    const got = await attempt(ctx, `small ${target}`, () =>
      kind === "direct"
        ? measureTarget(ctx, target, "", undefined)
        : withServer(ctx, kind, "transfers", `small ${target}`, (server) => measureTarget(ctx, target, server.baseUrl, new MemoryProbe(server))),
    );
    if (got) results.push(...got);
    if (ctx.tls && SMALL_TLS_TARGETS.includes(target)) {
      const overTls = await attempt(ctx, `small ${target} over TLS`, () =>
        withServer(ctx, "service", "transfers", `small ${target} over TLS`, (server) => measureTarget(ctx, target, server.baseUrl, new MemoryProbe(server)), true),
      );
      if (overTls) tls.push(...overTls);
    }
  }
  return { results, tls };
}
