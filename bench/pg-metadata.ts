/**
 * `--scenarios pg`: what PostgreSQL sustains for the metadata table, through this service's own
 * repository (openMetadata from src/metadata/open.ts, the code the server runs), on a throwaway
 * cluster (test/support/postgres.ts: loopback, fsync and synchronous_commit off, so inserts are an
 * upper bound for a durable server):
 *  - inserts: the seed rows, one at a time for the first 10% (at most 5,000), then 16 at a time;
 *  - keyset walk: every row, 100 per page, newest first, one page at a time;
 *  - keyset pages at concurrency 16 from random positions, for --small-seconds;
 *  - findById for --retrieve-ops random ids, one at a time.
 */
import type { FileRecord } from "../src/files/ports.js";
import { openMetadata } from "../src/metadata/open.js";
import { startPostgres } from "../test/support/postgres.js";
import { log, type Context } from "./harness.js";
import { seedFiles, type SeedFile } from "./seed.js";
import { latency, prng, type Latency } from "./stats.js";

const PAGE = 100;
const CONCURRENCY = 16;

export interface PgRate {
  what: string;
  concurrency: number;
  ops: number;
  rows: number;
  seconds: number;
  opsPerSecond: number;
  rowsPerSecond: number;
  latency: Latency;
}

export interface PgResult {
  rows: number;
  server: string;
  rates: PgRate[];
}

const toRecord = (f: SeedFile): FileRecord => ({
  id: f.id,
  filename: f.filename,
  purpose: f.purpose,
  bytes: f.bytes,
  createdAt: f.createdAt,
  expiresAt: f.expiresAt,
  mimeType: f.mimeType,
  sha256: f.sha256,
  storageKey: f.id,
  status: "processed",
  ownerPrincipal: null,
});

/** Runs `op(i)` for i in [0, count) with `concurrency` in flight, or until `seconds` pass. */
async function drive(count: number, concurrency: number, op: (i: number) => Promise<number>, seconds = Infinity) {
  const samples: number[] = [];
  let next = 0;
  let rows = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && performance.now() < deadline) {
        const i = next++;
        const s = performance.now();
        const n = await op(i); // not `rows += await`: that reads `rows` before the await and loses updates
        rows += n;
        samples.push(performance.now() - s);
      }
    }),
  );
  return { samples, rows, seconds: (performance.now() - t0) / 1000 };
}

function rate(what: string, concurrency: number, run: { samples: number[]; rows: number; seconds: number }): PgRate {
  const r: PgRate = {
    what,
    concurrency,
    ops: run.samples.length,
    rows: run.rows,
    seconds: run.seconds,
    opsPerSecond: run.samples.length / run.seconds,
    rowsPerSecond: run.rows / run.seconds,
    latency: latency(run.samples),
  };
  log(`pg ${what} c=${concurrency}: ${r.opsPerSecond.toFixed(0)} ops/s, ${r.rowsPerSecond.toFixed(0)} rows/s, p50 ${r.latency.p50Ms.toFixed(2)} ms, p99 ${r.latency.p99Ms.toFixed(2)} ms`);
  return r;
}

export async function runPg(ctx: Context): Promise<PgResult> {
  log("pg: starting a throwaway PostgreSQL...");
  const pg = await startPostgres();
  ctx.cleanup.add("stop PostgreSQL", () => pg.stop());
  let repo: Awaited<ReturnType<typeof openMetadata>>["files"];
  try {
    ({ files: repo } = await openMetadata({ type: "postgres", url: pg.url }));
  } catch (err) {
    await pg.stop();
    throw err;
  }
  try {
    const now = Math.floor(Date.now() / 1000);
    const files = seedFiles(ctx.options.rows, now).map(toRecord);
    const rates: PgRate[] = [];

    const serial = Math.max(1, Math.min(5_000, Math.floor(files.length / 10)));
    rates.push(rate("insert", 1, await drive(serial, 1, async (i) => (await repo.insert(files[i]!), 1))));
    if (files.length > serial) {
      rates.push(rate("insert", CONCURRENCY, await drive(files.length - serial, CONCURRENCY, async (i) => (await repo.insert(files[serial + i]!), 1))));
    }

    // floor(N / 100) full pages, then one partial or empty page that ends the walk.
    let after: { createdAt: number; id: string } | undefined;
    const walk = await drive(Math.floor(files.length / PAGE) + 1, 1, async () => {
      const page = await repo.list({ limit: PAGE, order: "desc", now, after });
      const last = page.at(-1);
      if (last) after = { createdAt: last.createdAt, id: last.id };
      return page.length;
    });
    if (walk.rows !== files.length) throw new Error(`the keyset walk saw ${walk.rows} rows, ${files.length} were inserted`);
    rates.push(rate("keyset page of 100 (full walk)", 1, walk));

    const random = prng(11);
    const pick = () => files[Math.floor(random() * files.length)]!;
    rates.push(
      rate(
        "keyset page of 100 (random start)",
        CONCURRENCY,
        await drive(
          Number.MAX_SAFE_INTEGER,
          CONCURRENCY,
          async () => {
            const start = pick();
            return (await repo.list({ limit: PAGE, order: "desc", now, after: { createdAt: start.createdAt, id: start.id } })).length;
          },
          ctx.options.smallSeconds,
        ),
      ),
    );
    rates.push(
      rate(
        "findById",
        1,
        await drive(ctx.options.retrieveOps, 1, async () => {
          const f = pick();
          if ((await repo.findById(f.id, now))?.id !== f.id) throw new Error(`findById ${f.id} did not find it`);
          return 1;
        }),
      ),
    );
    return { rows: files.length, server: "throwaway local PostgreSQL (test/support/postgres.ts: fsync=off, synchronous_commit=off)", rates };
  } finally {
    await repo.close();
    await pg.stop(); // idempotent; the clean-up step covers an abort before this
  }
}
