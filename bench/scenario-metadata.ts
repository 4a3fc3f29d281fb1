/**
 * List and retrieve at N rows (default 100,000), on databases seeded as seed.ts describes:
 *  - list: walk every row with `GET /v1/files?limit=100` (gRPC: ListFiles limit 100), following
 *    `after` = the page's last id, newest first; every row must be seen exactly once;
 *  - retrieve: `GET /v1/files/{id}` (gRPC: GetFile) for ids drawn at random (the same sequence for
 *    every target), one request at a time, for p50/p99.
 * Targets: this service over gRPC (connect-node, and @grpc/grpc-js, grpc-go or grpcio when
 * selected; the last two walk and retrieve inside their own process) and REST over HTTP/1.1 and
 * HTTP/2, the reference over REST. Each measured phase runs on a fresh server process (see
 * harness.ts for the memory method), and the server's CPU over the measured calls gives its CPU
 * per call.
 */
import { connectFilesClient, grpcJsFilesClient } from "./clients.js";
import { ForeignClient, type LoopRun } from "./foreign-clients.js";
import { attempt, log, MemoryProbe, mib, referenceDir, serviceDbPath, withServer, type Context, type Memory } from "./harness.js";
import { withTimeout } from "./lifecycle.js";
import { OpenAiRest } from "./openai-rest.js";
import type { Target } from "./options.js";
import { cpuStopwatch } from "./proc.js";
import { RestH2 } from "./rest-h2-client.js";
import { countRows, seedFiles, seedReference, seedService, type SeedFile } from "./seed.js";
import { referenceDbPath, type ServiceProcess } from "./servers.js";
import { latency, prng, type Latency } from "./stats.js";

export const PAGE_SIZE = 100;
/** Unmeasured retrieves before the measured ones, on each fresh server process. */
const RETRIEVE_WARMUP_CALLS = 500;
const META_TARGETS = ["grpc", "grpcjs", "grpcgo", "grpcio", "rest", "resth2", "llama"] as const;
type MetaTarget = (typeof META_TARGETS)[number];

export interface ListResult {
  target: MetaTarget;
  rows: number;
  rowsSeen: number;
  duplicates: number;
  /** Every seeded row seen exactly once. */
  complete: boolean;
  pages: number;
  seconds: number;
  rowsPerSecond: number;
  pageLatency: Latency;
  /** The server's CPU (utime + stime) over the walk, per page. */
  cpuMicrosPerCall: number;
  memory: Memory;
}

export interface RetrieveResult {
  target: MetaTarget;
  rows: number;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  latency: Latency;
  /** The server's CPU (utime + stime) over the measured requests, per request. */
  cpuMicrosPerCall: number;
  memory: Memory;
}

export interface SeedReport {
  method: string;
  rows: number;
  seconds: Partial<Record<"service" | "reference", number>>;
}

/** The two operations, over one transport. */
interface MetaClient {
  page(after: string | undefined): Promise<{ ids: string[]; hasMore: boolean; lastId: string | undefined }>;
  retrieve(id: string): Promise<string>;
  close(): void;
}

/** The two measured loops: a walk of at most `maxPages` pages, and one retrieve per id in order. */
interface MetaDriver {
  walk(maxPages: number): Promise<LoopRun & { pages: number; rowsSeen: number; duplicates: number }>;
  retrieve(ids: string[]): Promise<LoopRun & { mismatch: string | null }>;
  close(): void;
}

function metaClient(target: Exclude<MetaTarget, "grpcgo" | "grpcio">, baseUrl: string): MetaClient {
  if (target === "grpc") {
    const { client, close } = connectFilesClient(baseUrl);
    return {
      async page(after) {
        const res = await client.listFiles({ limit: PAGE_SIZE, after: after ?? "" });
        return { ids: res.data.map((f) => f.id), hasMore: res.hasMore, lastId: res.lastId };
      },
      async retrieve(id) {
        return (await client.getFile({ fileId: id })).file?.id ?? "";
      },
      close,
    };
  }
  if (target === "grpcjs") {
    const client = grpcJsFilesClient(baseUrl);
    return {
      async page(after) {
        const res = await client.listFiles(PAGE_SIZE, after ?? "");
        return { ids: res.data.map((f) => f.id), hasMore: res.hasMore, lastId: res.lastId };
      },
      async retrieve(id) {
        return (await client.getFile(id)).file?.id ?? "";
      },
      close: () => client.close(),
    };
  }
  const api = target === "resth2" ? new RestH2(baseUrl) : new OpenAiRest(baseUrl, 1);
  return {
    async page(after) {
      const res = await api.listPage(PAGE_SIZE, after);
      return { ids: res.data.map((f) => f.id), hasMore: res.has_more, lastId: res.last_id ?? res.data.at(-1)?.id };
    },
    async retrieve(id) {
      return (await api.retrieve(id)).id;
    },
    close: () => api.close(),
  };
}

/** The loops of `target`: the foreign clients run them themselves, the others here around `metaClient`. */
function metaDriver(ctx: Context, target: MetaTarget, baseUrl: string): MetaDriver {
  if (target === "grpcgo" || target === "grpcio") {
    const client = new ForeignClient(target, ctx.foreignClients, baseUrl);
    return { walk: (maxPages) => client.list(PAGE_SIZE, maxPages), retrieve: (ids) => client.retrieve(ids), close: () => client.close() };
  }
  const client = metaClient(target, baseUrl);
  return {
    async walk(maxPages) {
      const seen = new Set<string>();
      const samplesMs: number[] = [];
      let duplicates = 0;
      let after: string | undefined;
      const t0 = performance.now();
      while (samplesMs.length < maxPages) {
        const s = performance.now();
        const page = await withTimeout(client.page(after), 60_000, `${target} list page ${samplesMs.length + 1}`);
        samplesMs.push(performance.now() - s);
        for (const id of page.ids) {
          if (seen.has(id)) duplicates++;
          seen.add(id);
        }
        if (!page.hasMore || page.ids.length === 0) break;
        after = page.lastId;
      }
      return { samplesMs, seconds: (performance.now() - t0) / 1000, pages: samplesMs.length, rowsSeen: seen.size, duplicates };
    },
    async retrieve(ids) {
      const samplesMs: number[] = [];
      const t0 = performance.now();
      for (const id of ids) {
        const s = performance.now();
        const got = await withTimeout(client.retrieve(id), 60_000, `${target} retrieve ${id}`);
        samplesMs.push(performance.now() - s);
        if (got !== id) return { samplesMs, seconds: (performance.now() - t0) / 1000, mismatch: `retrieve ${id} answered ${got}` };
      }
      return { samplesMs, seconds: (performance.now() - t0) / 1000, mismatch: null };
    },
    close: () => client.close(),
  };
}

async function walk(ctx: Context, target: MetaTarget, server: ServiceProcess, files: SeedFile[]): Promise<ListResult> {
  const driver = metaDriver(ctx, target, server.baseUrl);
  try {
    await driver.walk(1); // warm-up
    await driver.retrieve([files[0]!.id]);
    const probe = new MemoryProbe(server);
    probe.begin();
    const serverCpu = cpuStopwatch(server.pid);
    // Bounded: a server that never says has_more=false cannot loop forever.
    const run = await driver.walk(Math.ceil(files.length / PAGE_SIZE) + 2);
    const cpuSeconds = serverCpu();
    const memory = probe.end();
    const result: ListResult = {
      target,
      rows: files.length,
      rowsSeen: run.rowsSeen,
      duplicates: run.duplicates,
      complete: run.rowsSeen === files.length && run.duplicates === 0,
      pages: run.pages,
      seconds: run.seconds,
      rowsPerSecond: run.rowsSeen / run.seconds,
      pageLatency: latency(run.samplesMs),
      cpuMicrosPerCall: (cpuSeconds * 1e6) / run.pages,
      memory,
    };
    log(
      `list ${target}: ${result.rowsSeen}/${result.rows} rows in ${result.pages} pages, ${run.seconds.toFixed(1)} s, page p50 ${result.pageLatency.p50Ms.toFixed(1)} ms, p99 ${result.pageLatency.p99Ms.toFixed(1)} ms, server CPU ${result.cpuMicrosPerCall.toFixed(0)} µs/page, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB`,
    );
    if (!result.complete) {
      const what = `list ${target}: walked ${result.rowsSeen} distinct rows of ${result.rows} seeded, ${run.duplicates} seen twice`;
      if (target === "llama") log(`${what} (the reference's cursor skips rows sharing a created_at second)`);
      else ctx.errors.push(what);
    }
    return result;
  } finally {
    driver.close();
  }
}

async function retrieveMany(ctx: Context, target: MetaTarget, server: ServiceProcess, files: SeedFile[]): Promise<RetrieveResult> {
  const driver = metaDriver(ctx, target, server.baseUrl);
  try {
    const random = prng(7);
    const ids = Array.from({ length: ctx.options.retrieveOps }, () => files[Math.floor(random() * files.length)]!.id);
    // Warm-up on other random ids, the same count for every target: the tail of a fresh process's
    // first few hundred calls is its JIT compiling (p99 3-4× the steady state's), not the call.
    const warmRandom = prng(11);
    const warmIds = Array.from({ length: RETRIEVE_WARMUP_CALLS }, () => files[Math.floor(warmRandom() * files.length)]!.id);
    const warm = await driver.retrieve(warmIds);
    if (warm.mismatch) throw new Error(`${target} warm-up: ${warm.mismatch}`);
    const probe = new MemoryProbe(server);
    probe.begin();
    const serverCpu = cpuStopwatch(server.pid);
    const run = await driver.retrieve(ids);
    const cpuSeconds = serverCpu();
    const memory = probe.end();
    if (run.mismatch) throw new Error(`${target}: ${run.mismatch}`);
    const result: RetrieveResult = {
      target,
      rows: files.length,
      ops: ids.length,
      seconds: run.seconds,
      opsPerSecond: ids.length / run.seconds,
      latency: latency(run.samplesMs),
      cpuMicrosPerCall: (cpuSeconds * 1e6) / ids.length,
      memory,
    };
    log(
      `retrieve ${target}: ${ids.length} at ${files.length} rows, ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latency.p50Ms.toFixed(2)} ms, p99 ${result.latency.p99Ms.toFixed(2)} ms, server CPU ${result.cpuMicrosPerCall.toFixed(0)} µs/call, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB`,
    );
    return result;
  } finally {
    driver.close();
  }
}

const isMetaTarget = (t: Target): t is MetaTarget => (META_TARGETS as readonly string[]).includes(t);

export async function runMetadata(ctx: Context, doList: boolean, doRetrieve: boolean) {
  const list: ListResult[] = [];
  const retrieve: RetrieveResult[] = [];
  const targets = ctx.options.targets.filter(isMetaTarget);
  const files = seedFiles(ctx.options.rows, Math.floor(Date.now() / 1000));
  const seed: SeedReport = { method: "direct SQLite inserts into each stopped server's openai_files table (bench/seed.ts)", rows: files.length, seconds: {} };
  const ready = { service: false, reference: false };

  if (targets.some((t) => t !== "llama")) {
    await attempt(ctx, "seeding this service", async () => {
      const t0 = performance.now();
      await withServer(ctx, "service", "metadata", "seed", async () => undefined); // start-up runs the migrations
      await seedService(serviceDbPath(ctx, "metadata"), files);
      const n = await countRows(serviceDbPath(ctx, "metadata"));
      if (n !== files.length) throw new Error(`seeded ${files.length} rows, the table holds ${n}`);
      seed.seconds.service = (performance.now() - t0) / 1000;
      ready.service = true;
      log(`seeded this service with ${n} rows in ${seed.seconds.service.toFixed(1)} s`);
    });
  }
  if (targets.includes("llama")) {
    await attempt(ctx, "seeding the reference", async () => {
      const t0 = performance.now();
      // Llama Stack creates its tables on the first request, not at start-up.
      await withServer(ctx, "reference", "metadata", "seed", async (server) => {
        const api = new OpenAiRest(server.baseUrl, 1);
        await api.listPage(1).finally(() => api.close());
      });
      const dbPath = referenceDbPath(referenceDir(ctx, "metadata"));
      await seedReference(dbPath, files);
      const n = await countRows(dbPath);
      if (n !== files.length) throw new Error(`seeded ${files.length} rows, the table holds ${n}`);
      seed.seconds.reference = (performance.now() - t0) / 1000;
      ready.reference = true;
      log(`seeded the reference with ${n} rows in ${seed.seconds.reference.toFixed(1)} s`);
    });
  }

  for (const target of targets) {
    const kind = target === "llama" ? "reference" : "service";
    if (!ready[kind]) continue;
    if (doList) {
      const r = await attempt(ctx, `list ${target}`, () => withServer(ctx, kind, "metadata", `list ${target}`, (server) => walk(ctx, target, server, files)));
      if (r) list.push(r);
    }
    if (doRetrieve) {
      const r = await attempt(ctx, `retrieve ${target}`, () =>
        withServer(ctx, kind, "metadata", `retrieve ${target}`, (server) => retrieveMany(ctx, target, server, files)),
      );
      if (r) retrieve.push(r);
    }
  }
  return { seed, list, retrieve };
}
