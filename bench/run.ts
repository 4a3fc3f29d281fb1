/**
 * The benchmark harness of issue #7: `npm run bench -- [options]` (`--help` lists them).
 *
 * One run measures every selected scenario against every selected target on one S3 endpoint:
 * direct S3 (the ceiling), this service (gRPC through connect-node, grpc-go and grpcio, REST over
 * HTTP/1.1 and HTTP/2, Uploads API), the floor (a bare node:http server on the same store), and
 * the reference, Llama Stack's `remote::s3` files provider (installed into a cached venv; if it
 * cannot be installed or started the run says so loudly and goes on without it). With
 * --storage local the service and the floor store on local disk instead, and direct S3 and the
 * reference are left out. It starts moto (or uses S3_BENCH_ENDPOINT / S3_ENDPOINT), each server on
 * loopback with its own bucket and SQLite database in a temp dir, and stops and removes all of it
 * at the end, also on failure, Ctrl+C or the --timeout-min limit.
 *
 * Output: tables and the targets' PASS/FAIL on stdout; OUT/bench-<time>.json and .png, copied to
 * OUT/latest.json and OUT/latest.png; with --cpu-prof, the server's profiles under
 * OUT/profiles/<time>/ and its top self-time functions. Exit code 1 if any measurement failed.
 * Scenario details: scenario-large.ts, scenario-small.ts, scenario-metadata.ts, pg-metadata.ts;
 * memory method: harness.ts; row seeding: seed.ts.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, release, tmpdir } from "node:os";
import { join, relative } from "node:path";
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { runCommand, startMoto } from "../test/support/moto.js";
import { S3PROXY_VERSION, startS3Proxy } from "../test/support/s3proxy.js";
import { REPO_ROOT } from "../test/support/server-process.js";
import { createBucket, s3Client, type S3Target } from "./s3.js";
import { attempt, measuredWindows, stopAllServers, withServer, type Context } from "./harness.js";
import { Cleanup, errorMessage, log, warnLoudly } from "./lifecycle.js";
import { OpenAiRest, UPLOAD_PART_BYTES, UPLOAD_PART_CONCURRENCY } from "./openai-rest.js";
import { isForeign, prepareForeignClients } from "./foreign-clients.js";
import { formatSize, parseOptions, S3_ONLY_TARGETS, USAGE, type Options, type S3Server } from "./options.js";
import { runPg } from "./pg-metadata.js";
import { runAccessList } from "./access-list.js";
import { formatProfile, summarizeProfiles } from "./profile.js";
import { ensureLlamaStackVenv, ensurePlotVenv, findPython, installedVersion, LLAMA_STACK_VERSION, referenceMaxUploadBytes, type FoundPython } from "./python.js";
import { runLarge, type TransferResult } from "./scenario-large.js";
import { runMetadata } from "./scenario-metadata.js";
import { runSmall, SMALL_FILE_BYTES, type SmallResult } from "./scenario-small.js";
import { libraryVsStubs } from "./library-vs-stubs.js";
import { makeBenchTls } from "./tls.js";
import { formatTlsVsPlaintext, tlsVsPlaintext } from "./tls-vs-plaintext.js";
import { formatTables, grpcVsRestOf, largeRatios, latencyRatios, smallRatios, targetChecks, type Results } from "./summary.js";

const cleanup = new Cleanup();

function machine() {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return "";
    }
  };
  const meminfo = read("/proc/meminfo");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(meminfo)?.[1] ?? NaN) * 1024;
  return {
    cpus: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(read("/proc/cpuinfo"))?.[1]?.trim() ?? "unknown",
    memTotalBytes: kb("MemTotal"),
    kernel: release(),
    node: process.version,
  };
}

async function s3Endpoint(server: S3Server): Promise<{ endpoint: string; kind: string; external: boolean }> {
  const external = process.env.S3_BENCH_ENDPOINT || process.env.S3_ENDPOINT;
  if (external) return { endpoint: external, kind: `external (${process.env.S3_BENCH_ENDPOINT ? "S3_BENCH_ENDPOINT" : "S3_ENDPOINT"})`, external: true };
  if (server === "s3proxy") {
    log("starting s3proxy...");
    const proxy = await startS3Proxy();
    cleanup.add("stop s3proxy", () => proxy.stop());
    return { endpoint: proxy.endpoint, kind: `s3proxy ${S3PROXY_VERSION}, filesystem provider (started by the harness)`, external: false };
  }
  log("starting moto...");
  const moto = await startMoto();
  cleanup.add("stop moto", () => moto.stop());
  return { endpoint: moto.endpoint, kind: "moto (started by the harness)", external: false };
}

/** Removes a bucket the harness created on an external endpoint, objects and unfinished uploads first. */
async function deleteBucket(target: S3Target): Promise<void> {
  const s3 = s3Client(target);
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: target.bucket, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: keys, Quiet: true } }));
      token = page.NextContinuationToken;
    } while (token);
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: target.bucket }));
    for (const u of uploads.Uploads ?? []) await s3.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: u.Key!, UploadId: u.UploadId! }));
    await s3.send(new DeleteBucketCommand({ Bucket: target.bucket }));
  } finally {
    s3.destroy();
  }
}

interface ReferenceInfo {
  available: boolean;
  reason: string | null;
  version: string | null;
  python: string | null;
  maxUploadBytes?: number;
}

/** Installs the reference and checks it starts and answers /v1/files; on any failure, says why loudly. */
async function prepareReference(ctx: Context, python: FoundPython | { problems: string[] }): Promise<ReferenceInfo> {
  const unavailable = (reason: string): ReferenceInfo => {
    warnLoudly(`the reference (Llama Stack ${LLAMA_STACK_VERSION} remote::s3 files provider) is NOT benchmarked in this run: ${reason}`);
    ctx.referenceProblem = reason;
    ctx.options.targets = ctx.options.targets.filter((t) => t !== "llama");
    return { available: false, reason, version: null, python: "python" in python ? python.version : null };
  };
  if (!("python" in python)) return unavailable(`llama-stack 0.7 needs Python >= 3.12 and none was found (set FILES_BENCH_PYTHON): ${python.problems.join("; ")}`);
  try {
    ctx.referenceVenv = await ensureLlamaStackVenv(python);
  } catch (err) {
    return unavailable(`installing it failed: ${errorMessage(err)}`);
  }
  try {
    await withServer(ctx, "reference", "smoke", "reference smoke test", async (server) => {
      const api = new OpenAiRest(server.baseUrl, 1);
      try {
        const file = await api.uploadSmall(Buffer.from("smoke test"), "smoke.txt");
        await api.retrieve(file.id);
        await api.request("DELETE", `/v1/files/${file.id}`);
      } finally {
        api.close();
      }
    });
  } catch (err) {
    ctx.referenceVenv = undefined;
    return unavailable(`it did not start or answer: ${errorMessage(err)}`);
  }
  const version = await installedVersion(ctx.referenceVenv, "llama-stack");
  try {
    ctx.referenceMaxUploadBytes = await referenceMaxUploadBytes(ctx.referenceVenv);
  } catch (err) {
    ctx.referenceVenv = undefined;
    return unavailable(errorMessage(err));
  }
  log(`reference: llama-stack ${version} (Python ${python.version}) answers on loopback; it accepts uploads up to ${formatSize(ctx.referenceMaxUploadBytes)}`);
  return { available: true, reason: null, version, python: python.version, maxUploadBytes: ctx.referenceMaxUploadBytes };
}

async function drawChart(python: FoundPython | { problems: string[] }, jsonPath: string, pngPath: string): Promise<string | null> {
  if (!("python" in python)) return `no Python >= 3.12 for matplotlib: ${python.problems.join("; ")}`;
  try {
    const venv = await ensurePlotVenv(python);
    const r = await runCommand(join(venv, "bin", "python"), [join(REPO_ROOT, "bench/chart.py"), jsonPath, pngPath], { timeoutMs: 120_000 });
    if (r.code !== 0) return `chart.py failed: ${r.stderr || r.stdout}`;
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}

async function main(options: Options): Promise<number> {
  const started = Date.now();
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-").replace(/-\d{3}Z$/, "Z");
  await mkdir(options.outDir, { recursive: true });
  const scenarioSeconds: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      scenarioSeconds[name] = (Date.now() - t0) / 1000;
    }
  };

  const needsServers = options.scenarios.some((s) => s !== "pg");
  const local = options.storage === "local";
  const leftOut = local ? options.targets.filter((t) => S3_ONLY_TARGETS.includes(t)) : [];
  if (leftOut.length > 0) {
    options.targets = options.targets.filter((t) => !leftOut.includes(t));
    log(`--storage local: ${leftOut.join(" and ")} left out (they need S3); the ratios are against REST (HTTP/1.1) in this run`);
  }
  const wantsReference = needsServers && options.targets.includes("llama");
  // Python (and the installs, first time only) while moto starts.
  const pythonFound = findPython();
  const plotReady = pythonFound.then((p) => ("python" in p ? ensurePlotVenv(p).then(() => undefined) : undefined)).catch(() => undefined);

  // `pg` alone needs no S3, nor does the local store.
  const { endpoint, kind, external } =
    needsServers && !local ? await s3Endpoint(options.s3) : { endpoint: "", kind: local ? "none (--storage local)" : "none (pg only)", external: false };
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "files-bench-"));
  cleanup.add("remove the temp dir", () => rm(dir, { recursive: true, force: true }));
  const ctx: Context = {
    options,
    s3: {
      endpoint,
      region: process.env.S3_BENCH_REGION || "us-east-1",
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || "test",
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "test",
    },
    buckets: {
      direct: `files-bench-direct-${suffix}`,
      service: `files-bench-service-${suffix}`,
      floor: `files-bench-floor-${suffix}`,
      reference: `files-bench-reference-${suffix}`,
    },
    foreignClients: {},
    dir,
    referenceVenv: undefined,
    referenceProblem: undefined,
    referenceMaxUploadBytes: Number.MAX_SAFE_INTEGER,
    cpuProfDir: options.cpuProf ? join(options.outDir, "profiles", stamp) : undefined,
    phaseOfPid: new Map(),
    cleanup,
    errors: [],
    tls: options.tls ? makeBenchTls(dir) : undefined,
  };
  if (needsServers && !local) {
    for (const bucket of Object.values(ctx.buckets)) {
      await createBucket({ ...ctx.s3, bucket });
      if (external) cleanup.add(`delete bucket ${bucket}`, () => deleteBucket({ ...ctx.s3, bucket }));
    }
  }
  cleanup.add("stop the servers", () => stopAllServers());
  log(local ? `storage: local, under ${dir}` : `S3: ${kind} at ${endpoint}; temp dir ${dir}`);
  log(`scenarios ${options.scenarios.join(",")}; targets ${options.targets.join(",")}; sizes ${options.sizes.map(formatSize).join(",")}; rows ${options.rows}`);
  if (options.cpuProf) log(`--cpu-prof: this service runs under the V8 profiler (its figures are slower than without); profiles go to ${ctx.cpuProfDir}`);
  if (options.payloadSigning) log(`this service runs with payload_signing: ${options.payloadSigning}`);
  if (options.tls) log("--tls: large and small also run on the service's TLS port (server.tls, a CA made for this run), each right after the same path in plaintext");

  const foreign =
    needsServers && options.targets.some(isForeign) ? await phase("client builds", () => prepareForeignClients(options.targets, dir)) : { commands: {}, problems: {} };
  ctx.foreignClients = foreign.commands;
  for (const [target, problem] of Object.entries(foreign.problems)) {
    warnLoudly(`target ${target} is NOT benchmarked in this run: its client could not be prepared: ${problem}`);
    options.targets = options.targets.filter((t) => t !== target);
  }

  const python = await pythonFound;
  const reference: ReferenceInfo = wantsReference
    ? await phase("reference set-up", () => prepareReference(ctx, python))
    : { available: false, reason: needsServers ? "not selected (--targets)" : "no scenario needs it", version: null, python: null };

  const results: Results = { large: [], small: [], list: [], retrieve: [], pg: null, rows: options.rows, largeNotes: [], selected: options.targets };
  let seed: unknown = null;
  let largeSkipped: unknown[] = [];
  const overTls: { large: TransferResult[]; small: SmallResult[] } = { large: [], small: [] };
  if (options.scenarios.includes("large")) {
    const large = await phase("large", () => runLarge(ctx));
    results.large = large.results;
    overTls.large = large.tls;
    largeSkipped = large.skipped;
    results.largeNotes = large.skipped.map((s) => `${s.target} ${formatSize(s.sizeBytes)} not measured: ${s.reason}`);
  }
  if (options.scenarios.includes("small")) {
    const small = await phase("small", () => runSmall(ctx));
    results.small = small.results;
    overTls.small = small.tls;
  }
  if (options.scenarios.includes("list") || options.scenarios.includes("retrieve")) {
    const meta = await phase("list+retrieve", () => runMetadata(ctx, options.scenarios.includes("list"), options.scenarios.includes("retrieve")));
    results.list = meta.list;
    results.retrieve = meta.retrieve;
    seed = meta.seed;
  }
  if (options.scenarios.includes("pg")) {
    results.pg = (await phase("pg", () => attempt(ctx, "pg", () => runPg(ctx)))) ?? null;
  }
  if (options.scenarios.includes("access")) {
    results.access = (await phase("access", () => attempt(ctx, "access", () => runAccessList({ rows: options.rows, rounds: 21, postgres: false, server: true })))) ?? null;
  }
  await stopAllServers(); // before reading the profiles, which are written at exit

  const checks = targetChecks(results);
  const tlsRatios = options.tls ? tlsVsPlaintext(results, overTls) : null;
  const elapsedSeconds = (Date.now() - started) / 1000;
  const json = {
    date: new Date(started).toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
    machine: machine(),
    s3: kind,
    storage: options.storage,
    targetsLeftOut: { ...Object.fromEntries(leftOut.map((t) => [t, "--storage local (needs S3)"])), ...foreign.problems },
    options: { ...options, outDir: relative(REPO_ROOT, options.outDir) || options.outDir },
    settings: {
      smallFileBytes: SMALL_FILE_BYTES,
      uploadsApi: { partBytes: UPLOAD_PART_BYTES, partsInFlight: UPLOAD_PART_CONCURRENCY },
      service: `dist/src/main.js, SQLite metadata, ${local ? "local store (inline::localfs)" : "S3, default part size and concurrency"}`,
      floor: `bench/floor-server.ts: node:http, SHA-256 of every upload, ${local ? "temp file flushed and renamed" : "lib-storage Upload (8 MiB parts, 4 in flight), streamed GetObject, the service's createS3Client with its payload_signing"}`,
      serverCpu: "utime + stime of the server process (live threads' schedstat, else /proc/PID/stat) right before and after each upload and download, and over each small level, list walk and retrieve run",
      memoryMethod:
        "fresh server process per measured phase; after a warm-up VmHWM is reset via /proc/PID/clear_refs and VmRSS taken as idle; peak = VmHWM after the phase",
      seeding: seed,
    },
    reference,
    large: results.large,
    largeSkipped,
    small: results.small,
    list: results.list,
    retrieve: results.retrieve,
    pg: results.pg,
    access: results.access ?? null,
    tls: options.tls ? { large: overTls.large, small: overTls.small } : null,
    ratios: {
      large: largeRatios(results.large),
      small: smallRatios(results.small),
      latency: latencyRatios(results.list, results.retrieve),
      grpcVsRest: grpcVsRestOf(results),
      tlsVsPlaintext: tlsRatios,
      libraryVsStubs: libraryVsStubs(results.large),
    },
    targets: checks,
    errors: ctx.errors,
    scenarioSeconds,
    elapsedSeconds,
  };

  console.log("");
  console.log(formatTables(results));
  console.log("");
  if (tlsRatios) {
    console.log(formatTlsVsPlaintext(tlsRatios));
    console.log("");
  }

  const jsonPath = join(options.outDir, `bench-${stamp}.json`);
  const pngPath = join(options.outDir, `bench-${stamp}.png`);
  await writeFile(jsonPath, JSON.stringify(json, null, 2) + "\n");
  await copyFile(jsonPath, join(options.outDir, "latest.json"));
  log(`results: ${relative(REPO_ROOT, jsonPath)} (and latest.json)`);
  await plotReady;
  const chartProblem = await drawChart(python, jsonPath, pngPath);
  if (chartProblem) warnLoudly(`no chart: ${chartProblem}`);
  else {
    await copyFile(pngPath, join(options.outDir, "latest.png"));
    log(`chart: ${relative(REPO_ROOT, pngPath)} (and latest.png)`);
  }

  if (ctx.cpuProfDir) {
    const profile = await summarizeProfiles(ctx.cpuProfDir, ctx.phaseOfPid, measuredWindows);
    if (profile) {
      console.log("");
      console.log(formatProfile(profile, ctx.cpuProfDir));
      await writeFile(join(ctx.cpuProfDir, "summary.json"), JSON.stringify(profile, null, 2) + "\n");
    } else warnLoudly(`--cpu-prof: no .cpuprofile was written to ${ctx.cpuProfDir}`);
  }

  if (!reference.available && wantsReference) warnLoudly(`the reference was NOT measured: ${reference.reason}`);
  const minutes = Math.floor(elapsedSeconds / 60);
  log(`done in ${minutes} min ${Math.round(elapsedSeconds - minutes * 60)} s (${Object.entries(scenarioSeconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")})`);
  if (ctx.errors.length > 0) {
    console.error(`[bench] ${ctx.errors.length} measurement(s) failed:\n${ctx.errors.map((e) => `  - ${e}`).join("\n")}`);
    return 1;
  }
  return 0;
}

async function fail(code = 1): Promise<never> {
  setTimeout(() => process.exit(code), 60_000).unref(); // should clean-up itself hang
  await cleanup.run();
  process.exit(code);
}

let options: Options | "help";
try {
  if (Number(process.versions.node.split(".")[0]) < 22) throw new Error(`Node 22 or newer is required, this is ${process.version}`);
  options = parseOptions();
} catch (err) {
  console.error(`[bench] ${errorMessage(err)}\n\n${USAGE}`);
  process.exit(2);
}
if (options === "help") {
  console.log(USAGE);
  process.exit(0);
}
const opts = options;

// Hard limit on the whole run. Kept referenced on purpose: a stall ends here with exit 1.
const hardLimit = setTimeout(() => {
  console.error(`[bench] aborting: not finished after ${opts.timeoutMinutes} min`);
  void fail();
}, opts.timeoutMinutes * 60_000);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`[bench] ${signal}: stopping`);
    void fail(130);
  });
}

main(opts).then(
  async (code) => {
    clearTimeout(hardLimit);
    await cleanup.run();
    process.exit(code);
  },
  async (err: unknown) => {
    console.error(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await fail();
  },
);
