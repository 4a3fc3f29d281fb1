/**
 * List latency under the access policy: 100,000 rows, half of each owner's with its attributes, 100
 * owners in 10 teams (so the caller sees its own 1,000 and 4,500 of its teammates'). One caller walks its listing (limit 100, `after` = last id) under owner_only
 * and under llama_stack_default, in the same run and alternating, through FilesService and the SQL
 * repository; prints p50/p99 and CPU per page and the ratios (the target: preset p99 within 1.5× of
 * owner_only's). `node --import tsx bench/access-list.ts [rows] [--rounds N] [--postgres]`
 * (--postgres: a throwaway PostgreSQL cluster instead of the SQLite file). With --server, also
 * through the built service over REST, as users meet it: two servers on the same SQLite file, one
 * per policy, the caller authenticated by an API key carrying its attributes; server CPU per page
 * from /proc (run `npm run build` first).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccessControl } from "../src/files/access-control.js";
import { LLAMA_STACK_DEFAULT_POLICY, OWNER_ONLY_POLICY, type User } from "../src/files/access-policy.js";
import { FilesService } from "../src/files/files-service.js";
import type { FileRecord, ObjectStore } from "../src/files/ports.js";
import { openFileRepository } from "../src/metadata/open.js";
import { startPostgres } from "../test/support/postgres.js";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { cpuStopwatch } from "./proc.js";
import { startService, type ServiceProcess } from "./servers.js";
import { pathToFileURL } from "node:url";

export interface AccessListOptions {
  rows: number;
  rounds: number;
  /** A throwaway PostgreSQL cluster instead of the SQLite file. */
  postgres: boolean;
  /** Also through the built service over REST (SQLite only). */
  server: boolean;
}

export type AccessListResult = Awaited<ReturnType<typeof runAccessList>>;

/** The walks (see the header); `npm run bench -- --scenarios access` runs it with --server. */
export async function runAccessList(options: AccessListOptions) {
  const ROWS = options.rows;
  const ROUNDS = options.rounds;
  const POSTGRES = options.postgres;
  const SERVER = options.server && !POSTGRES;
  const OWNERS = 100;
  const PAGES = 60;
  const dir = mkdtempSync(join(tmpdir(), "files-access-bench-"));
  const dbPath = join(dir, "files.db");

  const team = (owner: number) => `t${owner % 10}`;
  const now = Math.floor(Date.now() / 1000);
  const row = (i: number): FileRecord => {
    const owner = i % OWNERS;
    const id = `file-${i.toString(16).padStart(32, "0")}`;
    return {
      id, filename: `f${i}.txt`, purpose: "assistants", bytes: 1, createdAt: now - ROWS + i, expiresAt: null, mimeType: "text/plain",
      sha256: "", storageKey: id, status: "processed", ownerPrincipal: `u${owner}`,
      // Half of each owner's rows (alternate blocks of 100), so teammates share some of everything.
      ...(Math.floor(i / OWNERS) % 2 === 0 ? { accessAttributes: { roles: [`u${owner}`], teams: [team(owner)] } } : {}),
    };
  };

  const pg = POSTGRES ? await startPostgres() : undefined;
  const repository = await openFileRepository(pg ? { type: "postgres", url: pg.url } : { type: "sqlite", dbPath });
  if (pg) {
    // Through the repository, 16 at a time: the triggers fill the side table as they would in service.
    for (let i = 0; i < ROWS; i += 16) await Promise.all(Array.from({ length: Math.min(16, ROWS - i) }, (_, k) => repository.insert(row(i + k))));
    const connection = (repository as unknown as { orm: { em: { getConnection(): { execute(sql: string): Promise<unknown> } } } }).orm.em.getConnection();
    await connection.execute("analyze");
  } else {
    const db = new DatabaseSync(dbPath);
    const insert = db.prepare(
      `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, mime_type, sha256, storage_key, status, owner_principal, access_attributes)
       values (?, ?, 'assistants', 1, ?, null, 'text/plain', '', ?, 'processed', ?, ?)`,
    );
    db.exec("begin");
    for (let i = 0; i < ROWS; i++) {
      const r = row(i);
      insert.run(r.id, r.filename, r.createdAt, r.id, r.ownerPrincipal, JSON.stringify(r.accessAttributes ?? null));
    }
    db.exec("commit");
    db.exec("analyze");
    db.close();
  }

  const store = {} as ObjectStore; // listing reads no object
  const caller: User = { principal: "u7", attributes: { roles: ["u7"], teams: [team(7)] } };
  const services = {
    owner_only: new FilesService({ store, repository, maxFileBytes: 1, access: new AccessControl(OWNER_ONLY_POLICY) }),
    llama_stack_default: new FilesService({ store, repository, maxFileBytes: 1, access: new AccessControl(LLAMA_STACK_DEFAULT_POLICY) }),
  };

  async function walk(files: FilesService): Promise<{ ms: number[]; cpuMs: number[]; rows: number }> {
    const ms: number[] = [];
    let after: string | undefined;
    let rows = 0;
    // CPU over the whole walk: getrusage costs about as much as a page here, so not around each page.
    const c0 = process.cpuUsage();
    for (let page = 0; page < PAGES; page++) {
      const t0 = performance.now();
      const result = await files.list({ limit: 100, after, owner: caller });
      ms.push(performance.now() - t0);
      rows += result.data.length;
      if (!result.hasMore) break;
      after = result.lastId!;
    }
    const c = process.cpuUsage(c0);
    return { ms, cpuMs: [(c.user + c.system) / 1000 / ms.length], rows };
  }

  type Name = keyof typeof services;
  const samples: Record<Name, { ms: number[]; cpuMs: number[]; rows: number }> = {
    owner_only: { ms: [], cpuMs: [], rows: 0 },
    llama_stack_default: { ms: [], cpuMs: [], rows: 0 },
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(services) as Name[]) {
      const { ms, cpuMs, rows } = await walk(services[name]);
      if (round === 0) continue; // the first round warms caches
      samples[name].ms.push(...ms);
      samples[name].cpuMs.push(...cpuMs);
      samples[name].rows = rows;
    }
  }
  const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const report = Object.fromEntries(
    Object.entries(samples).map(([name, s]) => [
      name,
      { pages: s.ms.length, visible_rows: s.rows, p50_ms: +pct(s.ms, 50).toFixed(3), p99_ms: +pct(s.ms, 99).toFixed(3), cpu_ms_per_page: +mean(s.cpuMs).toFixed(3) },
    ]),
  ) as unknown as Record<Name, { p99_ms: number; p50_ms: number; cpu_ms_per_page: number }>;
  const ratio = report.llama_stack_default.p99_ms / report.owner_only.p99_ms;
  const inProcess = {
    rows: ROWS,
    database: POSTGRES ? "postgresql" : "sqlite",
    attributesOnHalf: true,
    ...report,
    p50_ratio: +(report.llama_stack_default.p50_ms / report.owner_only.p50_ms).toFixed(2),
    p99_ratio: +ratio.toFixed(2),
    cpu_ratio: +(report.llama_stack_default.cpu_ms_per_page / report.owner_only.cpu_ms_per_page).toFixed(2),
    within_1_5x: ratio <= 1.5,
  };
  await repository.close();
  const rest = SERVER ? await overRest() : null;
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
  return { inProcess, rest };

  /** The same walks through the service over REST (see the header). */
  async function overRest() {
    const key = `bench-${randomBytes(12).toString("hex")}`;
    const servers: Partial<Record<Name, ServiceProcess>> = {};
    try {
      for (const name of Object.keys(services) as Name[]) {
        const configPath = join(dir, `${name}.yaml`);
        writeFileSync(
          configPath,
          stringify({
            api: "files",
            provider_type: "inline::localfs",
            config: { storage_dir: join(dir, "objects"), metadata_store: { type: "sqlite", db_path: dbPath } },
            server: {
              host: "127.0.0.1",
              auth: { api_keys: [{ key, principal: caller.principal, attributes: caller.attributes }], access_policy: name },
            },
          }),
        );
        servers[name] = await startService(configPath);
      }
      const restSamples: Record<Name, { ms: number[]; cpuMs: number; pages: number }> = {
        owner_only: { ms: [], cpuMs: 0, pages: 0 },
        llama_stack_default: { ms: [], cpuMs: 0, pages: 0 },
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (const name of Object.keys(servers) as Name[]) {
          const server = servers[name]!;
          const cpu = cpuStopwatch(server.pid);
          const ms: number[] = [];
          let after: string | undefined;
          for (let page = 0; page < PAGES; page++) {
            const t0 = performance.now();
            const res = await fetch(`${server.baseUrl}/v1/files?limit=100${after ? `&after=${after}` : ""}`, { headers: { authorization: `Bearer ${key}` } });
            const body = (await res.json()) as { data: { id: string }[]; has_more: boolean; last_id?: string };
            ms.push(performance.now() - t0);
            if (res.status !== 200) throw new Error(`${name}: list answered ${res.status}`);
            if (!body.has_more) break;
            after = body.last_id ?? body.data.at(-1)!.id;
          }
          const cpuMs = cpu() * 1000;
          if (round === 0) continue; // warm-up
          restSamples[name].ms.push(...ms);
          restSamples[name].cpuMs += cpuMs;
          restSamples[name].pages += ms.length;
        }
      }
      const rest = Object.fromEntries(
        Object.entries(restSamples).map(([name, r]) => [
          name,
          { pages: r.pages, p50_ms: +pct(r.ms, 50).toFixed(3), p99_ms: +pct(r.ms, 99).toFixed(3), server_cpu_ms_per_page: +(r.cpuMs / r.pages).toFixed(3) },
        ]),
      ) as unknown as Record<Name, { p50_ms: number; p99_ms: number; server_cpu_ms_per_page: number }>;
      const restRatio = rest.llama_stack_default.p99_ms / rest.owner_only.p99_ms;
      return {
        over: "REST, the built service",
        ...rest,
        p50_ratio: +(rest.llama_stack_default.p50_ms / rest.owner_only.p50_ms).toFixed(2),
        p99_ratio: +restRatio.toFixed(2),
        server_cpu_ratio: +(rest.llama_stack_default.server_cpu_ms_per_page / rest.owner_only.server_cpu_ms_per_page).toFixed(2),
        within_1_5x: restRatio <= 1.5,
      };
    } finally {
      for (const server of Object.values(servers)) await server?.stop();
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const option = (name: string, fallback: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : fallback;
  };
  const rows = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== "--rounds") ?? 100_000);
  const result = await runAccessList({ rows, rounds: option("--rounds", 21), postgres: args.includes("--postgres"), server: args.includes("--server") });
  console.log(JSON.stringify(result.inProcess, null, 2));
  if (result.rest) console.log(JSON.stringify(result.rest, null, 2));
}
