/**
 * List latency under the access policy: 100,000 rows on SQLite, half of them with owner attributes,
 * 100 owners in 10 teams. One caller walks its listing (limit 100, `after` = last id) under
 * owner_only and under llama_stack_default, in the same run and alternating, through FilesService
 * and the SQL repository; prints p50/p99 per page and the ratio (the target: preset p99 within 1.5×
 * of owner_only's). `node --import tsx bench/access-list.ts [rows]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccessControl } from "../src/files/access-control.js";
import { LLAMA_STACK_DEFAULT_POLICY, OWNER_ONLY_POLICY, type User } from "../src/files/access-policy.js";
import { FilesService } from "../src/files/files-service.js";
import type { ObjectStore } from "../src/files/ports.js";
import { openFileRepository } from "../src/metadata/open.js";

const ROWS = Number(process.argv[2] ?? 100_000);
const OWNERS = 100;
const PAGES = 60;
const dir = mkdtempSync(join(tmpdir(), "files-access-bench-"));
const dbPath = join(dir, "files.db");

const team = (owner: number) => `t${owner % 10}`;
const repository = await openFileRepository({ type: "sqlite", dbPath });
const db = new DatabaseSync(dbPath);
const insert = db.prepare(
  `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, mime_type, sha256, storage_key, status, owner_principal, access_attributes)
   values (?, ?, 'assistants', 1, ?, null, 'text/plain', '', ?, 'processed', ?, ?)`,
);
const now = Math.floor(Date.now() / 1000);
db.exec("begin");
for (let i = 0; i < ROWS; i++) {
  const owner = i % OWNERS;
  const id = `file-${i.toString(16).padStart(32, "0")}`;
  const attributes = i % 2 === 0 ? JSON.stringify({ roles: [`u${owner}`], teams: [team(owner)] }) : "null";
  insert.run(id, `f${i}.txt`, now - ROWS + i, id, `u${owner}`, attributes);
}
db.exec("commit");
db.exec("analyze");
db.close();

const store = {} as ObjectStore; // listing reads no object
const caller: User = { principal: "u7", attributes: { roles: ["u7"], teams: [team(7)] } };
const services = {
  owner_only: new FilesService({ store, repository, maxFileBytes: 1, access: new AccessControl(OWNER_ONLY_POLICY) }),
  llama_stack_default: new FilesService({ store, repository, maxFileBytes: 1, access: new AccessControl(LLAMA_STACK_DEFAULT_POLICY) }),
};

async function walk(files: FilesService): Promise<{ ms: number[]; rows: number }> {
  const ms: number[] = [];
  let after: string | undefined;
  let rows = 0;
  for (let page = 0; page < PAGES; page++) {
    const t0 = performance.now();
    const result = await files.list({ limit: 100, after, owner: caller });
    ms.push(performance.now() - t0);
    rows += result.data.length;
    if (!result.hasMore) break;
    after = result.lastId!;
  }
  return { ms, rows };
}

const samples: Record<keyof typeof services, number[]> = { owner_only: [], llama_stack_default: [] };
for (let round = 0; round < 6; round++) {
  for (const name of Object.keys(services) as (keyof typeof services)[]) {
    const { ms } = await walk(services[name]);
    if (round > 0) samples[name].push(...ms); // the first round warms caches
  }
}
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const report = Object.fromEntries(
  Object.entries(samples).map(([name, ms]) => [name, { pages: ms.length, p50_ms: +pct(ms, 50).toFixed(3), p99_ms: +pct(ms, 99).toFixed(3) }]),
);
const ratio = report.llama_stack_default!.p99_ms / report.owner_only!.p99_ms;
console.log(JSON.stringify({ rows: ROWS, attributesOnHalf: true, ...report, p99_ratio: +ratio.toFixed(2), within_1_5x: ratio <= 1.5 }, null, 2));
await repository.close();
rmSync(dir, { recursive: true, force: true });
