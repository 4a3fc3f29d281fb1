/**
 * The code generators buf.gen.yaml runs besides protoc-gen-es, pinned here and installed once into
 * the test cache (`testCacheDir()`), so `buf generate` needs no network and gives the same output
 * on every machine:
 *
 * - `ensureGoPlugins()`: protoc-gen-go, protoc-gen-go-grpc and protoc-gen-connect-go, built with
 *   `go install module@version` into `<cache>/codegen-go/bin`;
 * - `ensurePythonGrpc()`: a venv `<cache>/codegen-venv` with grpcio-tools (for
 *   tools/protoc-gen-python-grpcio), grpcio and protobuf; also the runtime of the Python client test;
 * - `ensureCodegenTools()`: both, plus the PATH under which `buf generate` finds them all.
 *
 * Each install is redone when its marker does not name exactly the pinned versions.
 * Run directly (`node --import tsx test/support/codegen-tools.ts --print-path`), it installs what is
 * missing and prints that PATH; scripts/generate.sh uses this.
 */
import { existsSync, readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describeFailure, runCommand, testCacheDir, withLock } from "./moto.js";

/** Every generator and Python runtime version, pinned exactly: changing one changes gen/ on purpose. */
export const CODEGEN_VERSIONS = {
  protocGenGo: "v1.36.12", // google.golang.org/protobuf
  protocGenGoGrpc: "v1.6.2", // google.golang.org/grpc/cmd/protoc-gen-go-grpc
  protocGenConnectGo: "v1.21.1", // connectrpc.com/connect
  grpcioTools: "1.85.1", // bundles protoc 35.1's Python generators and grpc's Python plugin
  grpcio: "1.85.1",
  protobuf: "7.36.2",
} as const;

const GO_PLUGINS = [
  { name: "protoc-gen-go", pkg: "google.golang.org/protobuf/cmd/protoc-gen-go", version: CODEGEN_VERSIONS.protocGenGo },
  { name: "protoc-gen-go-grpc", pkg: "google.golang.org/grpc/cmd/protoc-gen-go-grpc", version: CODEGEN_VERSIONS.protocGenGoGrpc },
  {
    name: "protoc-gen-connect-go",
    pkg: "connectrpc.com/connect/cmd/protoc-gen-connect-go",
    version: CODEGEN_VERSIONS.protocGenConnectGo,
  },
] as const;

const PYTHON_PACKAGES = {
  "grpcio-tools": CODEGEN_VERSIONS.grpcioTools,
  grpcio: CODEGEN_VERSIONS.grpcio,
  protobuf: CODEGEN_VERSIONS.protobuf,
} as const;

const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const MARKER_NAME = ".files-test-installed.json";

type RunResult = Awaited<ReturnType<typeof runCommand>>;

// stderr, so that --print-path leaves stdout to the PATH alone.
const log = (message: string) => console.error(`[test-infra] ${message}`);

function markerMatches(marker: string, expected: unknown): boolean {
  if (!existsSync(marker)) return false;
  try {
    return JSON.stringify((JSON.parse(readFileSync(marker, "utf8")) as { pinned?: unknown }).pinned) === JSON.stringify(expected);
  } catch {
    return false;
  }
}

/** Runs one install step; on failure removes `dir` (no half-finished install survives) and throws. */
async function step(
  what: string,
  dir: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = INSTALL_TIMEOUT_MS,
): Promise<RunResult> {
  let r: RunResult;
  try {
    r = await runCommand(command, args, { env, timeoutMs });
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  if (r.code !== 0) {
    await fs.rm(dir, { recursive: true, force: true });
    throw new Error(`${what}: ${describeFailure(r)}`);
  }
  return r;
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () =>
    (promise ??= fn().catch((err: unknown) => {
      promise = undefined;
      throw err;
    }));
}

// ---------------------------------------------------------------------------
// Go plugins
// ---------------------------------------------------------------------------

/** The directory holding the pinned Go plugins, built on first use. */
export const ensureGoPlugins = once(async (): Promise<string> => {
  const cacheDir = testCacheDir();
  const dir = path.join(cacheDir, "codegen-go");
  const bin = path.join(dir, "bin");
  const marker = path.join(dir, MARKER_NAME);
  const pinned = GO_PLUGINS.map((p) => `${p.pkg}@${p.version}`);
  const ok = () => markerMatches(marker, pinned) && GO_PLUGINS.every((p) => existsSync(path.join(bin, p.name)));
  if (ok()) return bin;

  await fs.mkdir(cacheDir, { recursive: true });
  return await withLock(
    path.join(cacheDir, "codegen-go.lock"),
    async () => {
      if (ok()) return bin; // another process finished meanwhile
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(bin, { recursive: true });
      const started = Date.now();
      log(`installing ${GO_PLUGINS.map((p) => `${p.name}@${p.version}`).join(", ")} into ${bin} (first run only)...`);
      // The local toolchain only, and no C compiler needed.
      const env: NodeJS.ProcessEnv = { ...process.env, GOBIN: bin, GOTOOLCHAIN: "local", GOWORK: "off", CGO_ENABLED: "0" };
      const fail = "the Go protoc plugins could not be installed (Go must be on PATH; modules come from the Go proxy)";
      await Promise.all(
        GO_PLUGINS.map((p) => step(`${fail}: go install ${p.pkg}@${p.version} failed`, dir, "go", ["install", `${p.pkg}@${p.version}`], env)),
      );
      for (const p of GO_PLUGINS) {
        const r = await step(`${fail}: ${p.name} --version failed`, dir, path.join(bin, p.name), ["--version"], env, 30_000);
        if (!r.stdout.includes(p.version.replace(/^v/, ""))) {
          await fs.rm(dir, { recursive: true, force: true });
          throw new Error(`${fail}: ${p.name} reports '${r.stdout.trim()}', expected ${p.version}`);
        }
      }
      await fs.writeFile(marker, JSON.stringify({ pinned, installedAt: new Date().toISOString() }) + "\n");
      log(`installed the Go protoc plugins in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return bin;
    },
    "the Go protoc plugins",
  );
});

// ---------------------------------------------------------------------------
// Python: grpcio-tools, grpcio, protobuf
// ---------------------------------------------------------------------------

/** The interpreter of the venv holding the pinned grpcio-tools, grpcio and protobuf, created on first use. */
export const ensurePythonGrpc = once(async (): Promise<string> => {
  const cacheDir = testCacheDir();
  const venvDir = path.join(cacheDir, "codegen-venv");
  const python = path.join(venvDir, "bin", "python");
  const marker = path.join(venvDir, MARKER_NAME);
  const ok = () => existsSync(python) && markerMatches(marker, PYTHON_PACKAGES);
  if (ok()) return python;

  await fs.mkdir(cacheDir, { recursive: true });
  return await withLock(
    path.join(cacheDir, "codegen-venv.lock"),
    async () => {
      if (ok()) return python; // another process finished meanwhile
      await fs.rm(venvDir, { recursive: true, force: true });
      const requirements = Object.entries(PYTHON_PACKAGES).map(([name, version]) => `${name}==${version}`);
      const started = Date.now();
      log(`installing ${requirements.join(" ")} into ${venvDir} (first run only)...`);
      const basePython = process.env.FILES_TEST_PYTHON ?? "python3";
      const env: NodeJS.ProcessEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
      delete env.PYTHONHOME;
      delete env.PYTHONPATH;
      const fail = "grpcio-tools could not be installed (Python >= 3.9 with venv needed; set FILES_TEST_PYTHON to choose one)";
      await step(`${fail}: '${basePython} -m venv ${venvDir}' failed`, venvDir, basePython, ["-m", "venv", venvDir], env, 120_000);
      // Wheels only: a source build of grpcio takes many minutes and a C++ toolchain; better to fail fast.
      const pip = await step(
        `${fail}: pip install ${requirements.join(" ")} failed`,
        venvDir,
        python,
        ["-m", "pip", "install", "--only-binary=:all:", ...requirements],
        env,
      );
      await fs.writeFile(path.join(cacheDir, "codegen-venv-install.log"), `${pip.stdout}\n${pip.stderr}\n`).catch(() => undefined);
      const check = await step(
        `${fail}: the installed packages do not import`,
        venvDir,
        python,
        [
          "-c",
          "import json, importlib.metadata as m, grpc, grpc_tools.protoc, google.protobuf; " +
            `print(json.dumps({n: m.version(n) for n in ${JSON.stringify(Object.keys(PYTHON_PACKAGES))}}))`,
        ],
        env,
        60_000,
      );
      const installed = JSON.parse(check.stdout.trim()) as Record<string, string>;
      if (JSON.stringify(installed) !== JSON.stringify(PYTHON_PACKAGES)) {
        await fs.rm(venvDir, { recursive: true, force: true });
        throw new Error(`${fail}: expected ${JSON.stringify(PYTHON_PACKAGES)}, the venv has ${JSON.stringify(installed)}`);
      }
      await fs.writeFile(marker, JSON.stringify({ pinned: PYTHON_PACKAGES, installedAt: new Date().toISOString() }) + "\n");
      log(`installed grpcio-tools in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return python;
    },
    "grpcio-tools",
  );
});

// ---------------------------------------------------------------------------
// Both
// ---------------------------------------------------------------------------

/**
 * Installs every generator buf.gen.yaml names and returns the PATH for `buf generate`: the venv
 * first (tools/protoc-gen-python-grpcio runs `python3` from PATH), then the Go plugins, then
 * node_modules/.bin (buf, protoc-gen-es), then the caller's PATH.
 */
export async function ensureCodegenTools(): Promise<{ path: string; python: string; goBin: string }> {
  const [goBin, python] = await Promise.all([ensureGoPlugins(), ensurePythonGrpc()]);
  const entries = [path.dirname(python), goBin, path.join(REPO_ROOT, "node_modules", ".bin"), process.env.PATH ?? ""];
  return { path: entries.filter((e) => e !== "").join(path.delimiter), python, goBin };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === import.meta.filename) {
  if (process.argv[2] !== "--print-path") {
    console.error("usage: node --import tsx test/support/codegen-tools.ts --print-path");
    process.exit(2);
  }
  try {
    process.stdout.write(`${(await ensureCodegenTools()).path}\n`);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
}
