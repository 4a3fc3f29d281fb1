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
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { cachedInstall, installVenv, step, venvPython } from "./cached-install.js";

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
};

const REPO_ROOT = path.resolve(import.meta.dirname, "../..");

// stderr, so that --print-path leaves stdout to the PATH alone.
const log = (message: string) => console.error(`[test-infra] ${message}`);

/** The directory holding the pinned Go plugins, built on first use (Go on PATH; modules from the Go proxy). */
export const ensureGoPlugins = cachedInstall({
  what: "the Go protoc plugins",
  name: "codegen-go",
  pinned: GO_PLUGINS.map((p) => `${p.pkg}@${p.version}`),
  result: (dir) => path.join(dir, "bin"),
  present: (dir) => GO_PLUGINS.every((p) => existsSync(path.join(dir, "bin", p.name))),
  log,
  install: async (dir) => {
    const bin = path.join(dir, "bin");
    await mkdir(bin, { recursive: true });
    // The local toolchain only, and no C compiler needed.
    const env: NodeJS.ProcessEnv = { ...process.env, GOBIN: bin, GOTOOLCHAIN: "local", GOWORK: "off", CGO_ENABLED: "0" };
    await Promise.all(GO_PLUGINS.map((p) => step(`go install ${p.pkg}@${p.version} failed`, "go", ["install", `${p.pkg}@${p.version}`], { env })));
    for (const p of GO_PLUGINS) {
      const r = await step(`${p.name} --version failed`, path.join(bin, p.name), ["--version"], { env, timeoutMs: 30_000 });
      if (!r.stdout.includes(p.version.replace(/^v/, ""))) throw new Error(`${p.name} reports '${r.stdout.trim()}', expected ${p.version}`);
    }
  },
});

/** The interpreter of the venv holding the pinned grpcio-tools, grpcio and protobuf, created on first use. */
export const ensurePythonGrpc = cachedInstall({
  what: "grpcio-tools",
  name: "codegen-venv",
  pinned: PYTHON_PACKAGES,
  result: venvPython,
  log,
  // Wheels only: a source build of grpcio takes many minutes and a C++ toolchain; better to fail fast.
  install: (dir) => installVenv(dir, PYTHON_PACKAGES, ["grpc", "grpc_tools.protoc", "google.protobuf"], ["--only-binary=:all:"]),
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
