/**
 * Runs `reconcile` the way `npm run reconcile` does after its build step (the compiled entry point,
 * built once by global-setup), and reaches the metadata database behind the server's back.
 */
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { REPO_ROOT } from "./server-process.js";

export const RECONCILE_ENTRY = join(REPO_ROOT, "dist/src/maintenance/reconcile-command.js");

export interface ReconcileRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Writes a YAML config to a fresh temp file and returns its path. */
export async function writeConfigFile(config: object): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "files-reconcile-"));
  const path = join(dir, "files.yaml");
  await writeFile(path, stringify(config));
  return path;
}

/** Runs the command to its end; `env` is added to a copy of this process's (FILES_CONFIG removed unless given). */
export async function runReconcile(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<ReconcileRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!env.FILES_CONFIG) delete childEnv.FILES_CONFIG;
  const child = spawn(process.execPath, [RECONCILE_ENTRY, ...args], { cwd: REPO_ROOT, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** The JSON report of `--json` (the parts tests read). */
export interface JsonReport {
  mode: string;
  problems: number;
  exitCode: number;
  report: {
    objects: number;
    fileRows: number;
    partRows: number;
    orphanObjects: { key: string; recent: boolean }[];
    missingObjects: { id: string; storageKey: string }[];
    incompleteWrites: { key: string | null; id: string; recent: boolean }[];
    unknownObjects: { key: string }[];
    unknownIncompleteWrites: { key: string }[];
  };
  repair?: { deletedObjects: string[]; abortedWrites: { key: string | null }[]; removedRows: string[]; deferred: number; failures: unknown[] };
}

export type MetadataStoreYaml = { type: "sqlite"; db_path: string } | { type: "postgres"; url: string };

interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}

/**
 * Runs statements on the metadata database directly, as another tool (or damage) would, and
 * returns the last one's rows. `?` placeholders work on both databases.
 */
export async function sql(store: MetadataStoreYaml, statements: string | string[], params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const list = Array.isArray(statements) ? statements : [statements];
  if (store.type === "sqlite") {
    const db = new DatabaseSync(store.db_path);
    try {
      let rows: Record<string, unknown>[] = [];
      for (const [i, statement] of list.entries()) {
        const stmt = db.prepare(statement);
        const args = (i === list.length - 1 ? params : []) as never[];
        rows = stmt.columns().length > 0 ? (stmt.all(...args) as Record<string, unknown>[]) : (stmt.run(...args), []);
      }
      return rows;
    } finally {
      db.close();
    }
  }
  const { Client } = createRequire(import.meta.url)("pg") as { Client: new (c: { connectionString: string }) => PgClient };
  const client = new Client({ connectionString: store.url });
  await client.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const [i, statement] of list.entries()) {
      let n = 0;
      const text = i === list.length - 1 ? statement.replace(/\?/g, () => `$${++n}`) : statement;
      rows = (await client.query(text, i === list.length - 1 ? params : [])).rows;
    }
    return rows;
  } finally {
    await client.end();
  }
}
