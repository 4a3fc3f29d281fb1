/**
 * List and retrieve at N rows (default 100,000), on databases seeded as seed.ts describes:
 *  - list: walk every row with `GET /v1/files?limit=100` (gRPC: ListFiles limit 100), following
 *    `after` = the page's last id, newest first; every row must be seen exactly once;
 *  - retrieve: `GET /v1/files/{id}` (gRPC: GetFile) for ids drawn at random (the same sequence for
 *    every target), one request at a time, for p50/p99.
 * Targets: this service over gRPC (connect-node, and @grpc/grpc-js when asked for) and REST, the
 * reference over REST. Each measured phase runs on a fresh server process (see harness.ts for the
 * memory method).
 */
import { connectFilesClient, grpcJsFilesClient } from "./clients.js";
import { attempt, log, MemoryProbe, mib, referenceDir, serviceDbPath, withServer, type Context, type Memory } from "./harness.js";
import { withTimeout } from "./lifecycle.js";
import { OpenAiRest } from "./openai-rest.js";
import { countRows, seedFiles, seedReference, seedService, type SeedFile } from "./seed.js";
import { referenceDbPath, type ServiceProcess } from "./servers.js";
import { latency, prng, type Latency } from "./stats.js";

export const PAGE_SIZE = 100;
type MetaTarget = "grpc" | "grpcjs" | "rest" | "llama";

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
  memory: Memory;
}

export interface RetrieveResult {
  target: MetaTarget;
  rows: number;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  latency: Latency;
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

function metaClient(target: MetaTarget, baseUrl: string): MetaClient {
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
  const api = new OpenAiRest(baseUrl, 1);
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

async function walk(ctx: Context, target: MetaTarget, server: ServiceProcess, files: SeedFile[]): Promise<ListResult> {
  const client = metaClient(target, server.baseUrl);
  try {
    await client.page(undefined); // warm-up
    await client.retrieve(files[0]!.id);
    const probe = new MemoryProbe(server);
    probe.begin();
    const seen = new Set<string>();
    const samples: number[] = [];
    let duplicates = 0;
    let after: string | undefined;
    const t0 = performance.now();
    // Bounded: a server that never says has_more=false cannot loop forever.
    for (let pages = 0; pages <= files.length / PAGE_SIZE + 2; pages++) {
      const s = performance.now();
      const page = await withTimeout(client.page(after), 60_000, `${target} list page ${pages + 1}`);
      samples.push(performance.now() - s);
      for (const id of page.ids) {
        if (seen.has(id)) duplicates++;
        seen.add(id);
      }
      if (!page.hasMore || page.ids.length === 0) break;
      after = page.lastId;
    }
    const seconds = (performance.now() - t0) / 1000;
    const memory = probe.end();
    const result: ListResult = {
      target,
      rows: files.length,
      rowsSeen: seen.size,
      duplicates,
      complete: seen.size === files.length && duplicates === 0,
      pages: samples.length,
      seconds,
      rowsPerSecond: seen.size / seconds,
      pageLatency: latency(samples),
      memory,
    };
    log(
      `list ${target}: ${result.rowsSeen}/${result.rows} rows in ${result.pages} pages, ${seconds.toFixed(1)} s, page p50 ${result.pageLatency.p50Ms.toFixed(1)} ms, p99 ${result.pageLatency.p99Ms.toFixed(1)} ms, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB`,
    );
    if (!result.complete) {
      const what = `list ${target}: walked ${result.rowsSeen} distinct rows of ${result.rows} seeded, ${duplicates} seen twice`;
      if (target === "llama") log(`${what} (the reference's cursor skips rows sharing a created_at second)`);
      else ctx.errors.push(what);
    }
    return result;
  } finally {
    client.close();
  }
}

async function retrieveMany(ctx: Context, target: MetaTarget, server: ServiceProcess, files: SeedFile[]): Promise<RetrieveResult> {
  const client = metaClient(target, server.baseUrl);
  try {
    const random = prng(7);
    const ids = Array.from({ length: ctx.options.retrieveOps }, () => files[Math.floor(random() * files.length)]!.id);
    for (const id of ids.slice(0, 20)) await client.retrieve(id); // warm-up
    const probe = new MemoryProbe(server);
    probe.begin();
    const samples: number[] = [];
    const t0 = performance.now();
    for (const id of ids) {
      const s = performance.now();
      const got = await withTimeout(client.retrieve(id), 60_000, `${target} retrieve ${id}`);
      samples.push(performance.now() - s);
      if (got !== id) throw new Error(`${target}: retrieve ${id} answered ${got}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const memory = probe.end();
    const result: RetrieveResult = {
      target,
      rows: files.length,
      ops: ids.length,
      seconds,
      opsPerSecond: ids.length / seconds,
      latency: latency(samples),
      memory,
    };
    log(
      `retrieve ${target}: ${ids.length} at ${files.length} rows, ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latency.p50Ms.toFixed(2)} ms, p99 ${result.latency.p99Ms.toFixed(2)} ms, RSS idle ${mib(memory.idleRssBytes)} → peak ${mib(memory.peakRssBytes)} MiB`,
    );
    return result;
  } finally {
    client.close();
  }
}

export async function runMetadata(ctx: Context, doList: boolean, doRetrieve: boolean) {
  const list: ListResult[] = [];
  const retrieve: RetrieveResult[] = [];
  const targets = ctx.options.targets.filter((t): t is MetaTarget => t === "grpc" || t === "grpcjs" || t === "rest" || t === "llama");
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
