/**
 * The servers under test as child processes, behind one interface:
 *  - this service (dist/src/main.js; SQLite metadata, S3 on the bench endpoint or the local
 *    store), optionally under `node --cpu-prof`;
 *  - the floor, bench/floor-server.ts: a bare node:http server on the same store;
 *  - the reference, Llama Stack's `remote::s3` files provider, run by `llama stack run` with a
 *    config that enables only the files API (SQLite stores) and binds 127.0.0.1.
 * Each is a single process (checked: no children; the floor aside, see startFloor), so its
 * /proc/PID/status is all its memory and /proc/PID/stat all its CPU.
 */
import { spawn } from "node:child_process";
import { readlinkSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import type { PayloadSigning } from "../src/config/config.js";
import { freePort, guardChildProcess, OutputTail, waitForExit } from "../test/support/moto.js";
import { REPO_ROOT, s3ProviderConfig, startServer } from "../test/support/server-process.js";
import type { FloorConfig } from "./floor-server.js";
import type { BenchTls } from "./tls.js";
import { log } from "./lifecycle.js";
import { childPids, rssBytes, verifyNodeProcess } from "./proc.js";

export interface S3Settings {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface ServiceProcess {
  readonly label: string;
  readonly pid: number;
  readonly baseUrl: string;
  /** VmRSS right after it answered for the first time. */
  readonly startRssBytes: number;
  /** Stops it (SIGTERM, SIGKILL after 15 s). */
  stop(): Promise<void>;
  /** Its last log lines, for error messages. */
  tail(): string;
}

/** Sends SIGTERM, escalating to SIGKILL; resolves once the process is gone. */
async function terminate(child: import("node:child_process").ChildProcess, label: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  if (!(await waitForExit(child, 15_000))) {
    log(`${label} did not stop within 15 s of SIGTERM: SIGKILL`);
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
  }
}

// ---------------------------------------------------------------------------
// This service
// ---------------------------------------------------------------------------

/** Writes the service's config (its own bucket and SQLite file) and returns its path. */
export async function writeServiceConfig(
  dir: string,
  s3: S3Settings,
  bucket: string,
  dbPath: string,
  maxFileBytes: number,
  payloadSigning?: PayloadSigning,
  tls?: BenchTls,
): Promise<string> {
  const provider = s3ProviderConfig(s3.endpoint, bucket, { type: "sqlite", db_path: dbPath }, {
    region: s3.region,
    aws_access_key_id: s3.accessKeyId,
    aws_secret_access_key: s3.secretAccessKey,
    ...(payloadSigning && { payload_signing: payloadSigning }),
  });
  return writeConfig(dir, provider, maxFileBytes, tls);
}

/** The same on the embedded local store (inline::localfs): files under `storageDir`. */
export function writeLocalServiceConfig(dir: string, storageDir: string, dbPath: string, maxFileBytes: number, tls?: BenchTls): Promise<string> {
  const provider = { api: "files", provider_type: "inline::localfs", config: { storage_dir: storageDir, metadata_store: { type: "sqlite", db_path: dbPath } } };
  return writeConfig(dir, provider, maxFileBytes, tls);
}

/** With `tls`, the one port serves TLS only (server.tls), with the run's certificate. */
async function writeConfig(dir: string, provider: object, maxFileBytes: number, tls: BenchTls | undefined): Promise<string> {
  const config = {
    ...provider,
    server: { host: "127.0.0.1", limits: { max_file_bytes: maxFileBytes }, ...(tls && { tls: { cert_file: tls.certFile, key_file: tls.keyFile } }) },
  };
  const path = join(dir, "files.yaml");
  await writeFile(path, stringify(config));
  return path;
}

/**
 * Starts the built service on a free loopback port; with `cpuProfDir`, under --cpu-prof (written at
 * exit); `https` when its config has server.tls.
 */
export async function startService(configPath: string, cpuProfDir?: string, https = false): Promise<ServiceProcess> {
  const env: Record<string, string> = {};
  if (cpuProfDir) {
    await mkdir(cpuProfDir, { recursive: true });
    // NODE_OPTIONS, because startServer runs `node dist/src/main.js` itself; both flags are allowed there.
    env.NODE_OPTIONS = [process.env.NODE_OPTIONS, "--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`].filter(Boolean).join(" ");
  }
  // --config as an argument rather than startServer's `config`, which leaves its temp dir behind.
  const server = await startServer({ args: ["--config", configPath], env, https });
  const pid = server.child.pid!;
  const guard = guardChildProcess(pid, { exitSignal: "SIGKILL" }); // never outlive the harness
  try {
    verifyNodeProcess(pid, "dist/src/main.js");
  } catch (err) {
    server.child.kill("SIGKILL");
    guard.release();
    throw err;
  }
  return {
    label: "files service",
    pid,
    baseUrl: server.baseUrl,
    startRssBytes: rssBytes(pid),
    async stop() {
      await terminate(server.child, "the files service");
      guard.release();
    },
    tail: () => server.output.slice(-20).join("\n"),
  };
}

// ---------------------------------------------------------------------------
// The floor: bench/floor-server.ts
// ---------------------------------------------------------------------------

const FLOOR_SCRIPT = join(REPO_ROOT, "bench/floor-server.ts");

/**
 * Starts the floor server (through tsx, as the harness itself runs) and waits for its port. Its
 * child check is skipped: on a cold tsx cache, esbuild may still be running beside it, idle, and
 * the floor's figures are its own pid's anyway.
 */
export async function startFloor(config: FloorConfig): Promise<ServiceProcess> {
  const output = new OutputTail(8_000);
  const child = spawn(process.execPath, ["--import", "tsx", FLOOR_SCRIPT], {
    cwd: REPO_ROOT,
    env: { ...process.env, FLOOR_CONFIG: JSON.stringify(config) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${FLOOR_SCRIPT}`);
  const guard = guardChildProcess(pid, { exitSignal: "SIGKILL" });
  child.stderr!.on("data", (d: Buffer) => output.push(d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the floor server did not listen within 60 s")), 60_000);
    let text = "";
    child.stdout!.on("data", (d: Buffer) => {
      output.push(d);
      text += d.toString();
      const m = /\{"port":(\d+)\}/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the floor server exited (${signal ?? `code ${code}`}) before listening: ${output.toString()}`));
    });
  }).catch(async (err: unknown) => {
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
    guard.release();
    throw err;
  });
  return {
    label: "floor server",
    pid,
    baseUrl: `http://127.0.0.1:${port}`,
    startRssBytes: rssBytes(pid),
    async stop() {
      await terminate(child, "the floor server");
      guard.release();
    },
    tail: () => output.toString().split("\n").slice(-20).join("\n"),
  };
}

// ---------------------------------------------------------------------------
// The reference: Llama Stack's remote::s3 files provider
// ---------------------------------------------------------------------------

/** Where the reference keeps its file metadata (`openai_files` in the sql_default store). */
export const referenceDbPath = (dir: string): string => join(dir, "sql_store.db");

/**
 * The run config `llama stack run --providers files=remote::s3` generates in 0.7.3, with the
 * provider's settings filled in, the stores under `dir` rather than ~/.llama, and
 * server.host set: by default it binds every interface.
 */
function referenceConfig(dir: string, s3: S3Settings, bucket: string, auth?: object): object {
  return {
    version: 2,
    distro_name: "files-bench-reference",
    apis: ["files"],
    providers: {
      files: [
        {
          provider_id: "s3",
          provider_type: "remote::s3",
          config: {
            bucket_name: bucket,
            region: s3.region,
            aws_access_key_id: s3.accessKeyId,
            aws_secret_access_key: s3.secretAccessKey,
            endpoint_url: s3.endpoint,
            auto_create_bucket: false,
            metadata_store: { table_name: "s3_files_metadata", backend: "sql_default" },
          },
        },
      ],
    },
    storage: {
      backends: {
        kv_default: { type: "kv_sqlite", db_path: join(dir, "kvstore.db") },
        sql_default: { type: "sql_sqlite", db_path: referenceDbPath(dir) },
      },
      stores: {
        metadata: { namespace: "registry", backend: "kv_default" },
        inference: { table_name: "inference_store", backend: "sql_default" },
        conversations: { table_name: "openai_conversations", backend: "sql_default" },
        prompts: { namespace: "prompts", backend: "kv_default" },
        connectors: { namespace: "connectors", backend: "kv_default" },
      },
    },
    // `auth`: Llama Stack's server.auth (provider_config, access_policy), for tests that need its users.
    server: { host: "127.0.0.1", port: 8321, workers: 1, ...(auth && { auth }) },
  };
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Writes the reference's config under `dir` (once) and starts it; resolves when /v1/health answers. */
export async function startReference(venvDir: string, dir: string, s3: S3Settings, bucket: string, auth?: object): Promise<ServiceProcess> {
  await mkdir(join(dir, "home"), { recursive: true });
  const configPath = join(dir, "run.yaml");
  await writeFile(configPath, stringify(referenceConfig(dir, s3, bucket, auth)));
  for (let attempt = 1; ; attempt++) {
    try {
      return await startReferenceOnce(venvDir, dir, configPath);
    } catch (err) {
      // The free port may have been taken between probing and binding.
      if (attempt < 3 && /address already in use|errno 98/i.test((err as Error).message)) continue;
      throw err;
    }
  }
}

async function startReferenceOnce(venvDir: string, dir: string, configPath: string): Promise<ServiceProcess> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const output = new OutputTail(16_000);
  const env: NodeJS.ProcessEnv = { ...process.env, LLAMA_STACK_CONFIG_DIR: join(dir, "home"), PYTHONUNBUFFERED: "1" };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  // bin/llama is a Python script: the spawned pid is the interpreter that serves (uvicorn, one worker).
  const child = spawn(join(venvDir, "bin", "llama"), ["stack", "run", configPath, "--port", String(port)], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => output.push(d));
  child.stderr!.on("data", (d: Buffer) => output.push(d));
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once("spawn", () => resolve(undefined));
    child.once("error", resolve);
  });
  if (spawned || child.pid === undefined) throw new Error(`could not run ${join(venvDir, "bin", "llama")}: ${spawned?.message ?? "no pid"}`);
  const pid = child.pid;
  const guard = guardChildProcess(pid, { exitSignal: "SIGKILL" });
  const fail = async (message: string): Promise<never> => {
    child.kill("SIGKILL");
    await waitForExit(child, 5_000);
    guard.release();
    throw new Error(`${message}\n--- llama stack output ---\n${output.toString() || "(none)"}`);
  };

  const deadline = Date.now() + 180_000; // imports alone take seconds on a busy 2-core machine
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      return fail(`llama stack run exited during start-up (${child.signalCode ?? `exit code ${child.exitCode}`})`);
    }
    if (await answers(`${baseUrl}/v1/health`)) break;
    if (Date.now() > deadline) return fail(`llama stack did not answer ${baseUrl}/v1/health within 180 s`);
    await sleep(250);
  }
  const exe = readlinkSync(`/proc/${pid}/exe`);
  if (!/python/.test(exe)) return fail(`pid ${pid} runs ${exe}, not Python: its RSS would not be the server's`);
  const children = childPids(pid);
  if (children.length > 0) return fail(`pid ${pid} has child processes ${children.join(", ")}: its RSS alone would miss them`);
  return {
    label: "llama-stack",
    pid,
    baseUrl,
    startRssBytes: rssBytes(pid),
    async stop() {
      await terminate(child, "llama stack");
      guard.release();
    },
    tail: () => output.toString().split("\n").slice(-20).join("\n"),
  };
}
