/**
 * The gRPC bench clients in other languages: grpc-go (target grpcgo, bench/clients/go) and grpcio
 * (target grpcio, bench/clients/python), each with the repo's generated code. They are built or
 * installed once per run before anything is measured (`prepareForeignClients`), then started as
 * one LineClient per measured server: the large, small, list and retrieve loops run inside the
 * client, and the harness reads the server's CPU around each request.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cachedInstall, installVenv, step, venvPython } from "../test/support/cached-install.js";
import { ensurePythonGrpc } from "../test/support/codegen-tools.js";
import { describeFailure, runCommand } from "../test/support/moto.js";
import { REPO_ROOT } from "../test/support/server-process.js";
import type { BenchClient, Transferred } from "./clients.js";
import { LineClient } from "./line-client.js";
import { payloadPool } from "./payload.js";

export const FOREIGN_TARGETS = ["grpcgo", "grpcio", "tslib", "tslibstream", "golib", "golibstream", "pylib", "pylibstream"] as const;
export type ForeignTarget = (typeof FOREIGN_TARGETS)[number];
export const isForeign = (target: string): target is ForeignTarget => (FOREIGN_TARGETS as readonly string[]).includes(target);

/** How to start each prepared client: the command and its arguments for a server address (TLS trusting `caFile` when given). */
export type ForeignCommands = Partial<Record<ForeignTarget, { command: string; args: (addr: string, caFile?: string) => string[] }>>;

/** Builds the Go client into `dir` (the local toolchain only; go.sum is committed, so -mod=readonly holds); `lib` runs it on the client library. */
async function buildGoClient(dir: string, lib?: "parts" | "stream"): Promise<ForeignCommands["grpcgo"]> {
  const binary = join(dir, "files-bench-go");
  const env: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: "local", GOWORK: "off", CGO_ENABLED: "0" };
  const r = await runCommand("go", ["build", "-o", binary, "."], { cwd: join(REPO_ROOT, "bench/clients/go"), env, timeoutMs: 600_000 }).catch((err: unknown) => {
    throw new Error(`the grpcgo client needs Go on PATH: ${(err as Error).message}`);
  });
  if (r.code !== 0) throw new Error(`building bench/clients/go failed: ${describeFailure(r)}`);
  const libArgs = lib ? ["-lib", ...(lib === "stream" ? ["-stream"] : [])] : [];
  return { command: binary, args: (addr, caFile) => ["-addr", addr, ...libArgs, ...(caFile ? ["-ca", caFile] : [])] };
}

/**
 * The Python client runs in the tests' pinned grpcio/protobuf venv (test/support/codegen-tools.ts),
 * and reads the payload pool from a file in `dir`: Python's standard library has no AES.
 */
async function preparePythonClient(dir: string): Promise<ForeignCommands["grpcio"]> {
  const python = await ensurePythonGrpc();
  const poolFile = join(dir, "payload-pool.bin");
  await writeFile(poolFile, Buffer.concat(payloadPool()));
  const script = join(REPO_ROOT, "bench/clients/python/bench_client.py");
  return { command: python, args: (addr, caFile) => [script, addr, poolFile, ...(caFile ? [caFile] : [])] };
}

/** The Python library's venv: the lowest grpcio and protobuf its wheel accepts, and its build backend (the wheel is built in it, offline). */
const PYLIB_PINS = { grpcio: "1.85.1", protobuf: "7.35.1", hatchling: "1.33.0" };
const ensurePythonLibraryVenv = cachedInstall({
  what: "the Python client library's bench venv",
  name: "bench-pylib-venv",
  pinned: PYLIB_PINS,
  result: venvPython,
  install: (dir) => installVenv(dir, PYLIB_PINS, ["grpc", "google.protobuf", "hatchling"], ["--only-binary=:all:"]),
});

/** Installs clients/python as a wheel into its venv (at each run, so it is the tree's) and writes the payload pool; the python and the pool file. */
async function installPythonLibrary(dir: string): Promise<{ python: string; poolFile: string }> {
  const python = await ensurePythonLibraryVenv();
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
  await step("installing clients/python into the bench venv failed", python, ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "--force-reinstall", join(REPO_ROOT, "clients/python")], { env, timeoutMs: 300_000 });
  const poolFile = join(dir, "pylib-payload-pool.bin");
  await writeFile(poolFile, Buffer.concat(payloadPool()));
  return { python, poolFile };
}

/** The Python library's bench client, with or without parallel parts. */
function pythonLibraryClient(installed: { python: string; poolFile: string }, stream: boolean): ForeignCommands["pylib"] {
  const script = join(REPO_ROOT, "bench/clients/python/lib_client.py");
  return { command: installed.python, args: (addr, caFile) => [script, addr, installed.poolFile, ...(stream ? ["--stream"] : []), ...(caFile ? ["--ca", caFile] : [])] };
}

/** The TypeScript client library's bench client (large transfers only), with or without parallel parts. */
function tsLibraryClient(stream: boolean): ForeignCommands["tslib"] {
  const script = join(REPO_ROOT, "bench/clients/ts/lib-client.ts");
  return { command: process.execPath, args: (addr, caFile) => ["--import", "tsx", script, addr, ...(stream ? ["--stream"] : []), ...(caFile ? ["--ca", caFile] : [])] };
}

/** Prepares the selected foreign clients; a client that cannot be prepared is reported by target, not thrown. */
export async function prepareForeignClients(targets: readonly string[], dir: string): Promise<{ commands: ForeignCommands; problems: Partial<Record<ForeignTarget, string>> }> {
  const commands: ForeignCommands = {};
  const problems: Partial<Record<ForeignTarget, string>> = {};
  let installing: Promise<{ python: string; poolFile: string }> | undefined;
  const pyLibrary = () => (installing ??= installPythonLibrary(dir)); // once for both Python library targets
  const prepare = {
    grpcgo: (d: string) => buildGoClient(d),
    grpcio: preparePythonClient,
    tslib: async () => tsLibraryClient(false),
    tslibstream: async () => tsLibraryClient(true),
    // One build serves the Go stubs and library targets, each from its own directory.
    golib: (d: string) => mkdir(join(d, "golib"), { recursive: true }).then(() => buildGoClient(join(d, "golib"), "parts")),
    golibstream: (d: string) => mkdir(join(d, "golibstream"), { recursive: true }).then(() => buildGoClient(join(d, "golibstream"), "stream")),
    pylib: async () => pythonLibraryClient(await pyLibrary(), false),
    pylibstream: async () => pythonLibraryClient(await pyLibrary(), true),
  };
  await Promise.all(
    FOREIGN_TARGETS.filter((t) => targets.includes(t)).map(async (t) => {
      try {
        commands[t] = await prepare[t](dir);
      } catch (err) {
        problems[t] = (err as Error).message;
      }
    }),
  );
  return { commands, problems };
}

/** What a measured loop gives: each successful call's latency, and the loop's wall time. */
export interface LoopRun {
  samplesMs: number[];
  seconds: number;
}

/** Requests that run whole loops may take long; the bounds are generous, the clients bound each call at 60 s. */
const DAY_MS = 86_400_000;

/** One running foreign client, as a BenchClient for large transfers plus the small, retrieve and list loops. */
export class ForeignClient implements BenchClient {
  private readonly line: LineClient;

  /** An https:// baseUrl is TLS, trusting the CA in `caFile` only. */
  constructor(
    readonly name: ForeignTarget,
    commands: ForeignCommands,
    baseUrl: string,
    caFile?: string,
  ) {
    const how = commands[name];
    if (!how) throw new Error(`the ${name} client was not prepared`);
    const url = new URL(baseUrl);
    if (url.protocol === "https:" && !caFile) throw new Error(`${name}: ${baseUrl} is TLS, and no CA file was given`);
    const args = how.args(url.host, url.protocol === "https:" ? caFile : undefined);
    this.line = new LineClient(name, how.command, args, { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" }, REPO_ROOT);
  }

  /** Uploads `payload`'s bytes, which the client generates itself (see bench/payload.ts). */
  upload(payload: { bytes: number }, sha256: string): Promise<{ id: string } & Transferred> {
    return this.line.request({ op: "upload", size: payload.bytes, sha256 }, DAY_MS);
  }

  download(id: string): Promise<Transferred> {
    return this.line.request({ op: "download", id }, DAY_MS);
  }

  async remove(id: string): Promise<void> {
    await this.line.request({ op: "delete", id }, 60_000);
  }

  async small(concurrency: number, seconds: number, maxOps: number, size: number): Promise<LoopRun & { errors: number; firstError: string | null }> {
    const r = await this.line.request<{ latenciesMs: number[]; errors: number; firstError: string | null; seconds: number }>(
      { op: "small", concurrency, seconds, maxOps, size },
      seconds * 1000 + 120_000,
    );
    return { samplesMs: r.latenciesMs, errors: r.errors, firstError: r.firstError, seconds: r.seconds };
  }

  async retrieve(ids: string[]): Promise<LoopRun & { mismatch: string | null }> {
    const r = await this.line.request<{ latenciesMs: number[]; seconds: number; mismatches: number; firstMismatch: string | null }>({ op: "retrieve", ids }, 120_000 + ids.length * 1000);
    return { samplesMs: r.latenciesMs, seconds: r.seconds, mismatch: r.mismatches > 0 ? `${r.mismatches} of ${ids.length} answered wrong, first: ${r.firstMismatch}` : null };
  }

  async list(limit: number, maxPages: number): Promise<LoopRun & { pages: number; rowsSeen: number; duplicates: number }> {
    const r = await this.line.request<{ latenciesMs: number[]; seconds: number; pages: number; rowsSeen: number; duplicates: number }>(
      { op: "list", limit, maxPages },
      120_000 + maxPages * 1000,
    );
    return { samplesMs: r.latenciesMs, seconds: r.seconds, pages: r.pages, rowsSeen: r.rowsSeen, duplicates: r.duplicates };
  }

  /** The client's own process, for its memory. */
  get pid(): number | undefined {
    return this.line.pid;
  }

  close(): void {
    this.line.close();
  }
}
