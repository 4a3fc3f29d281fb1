/**
 * The Python client library (clients/python, distribution s3-files-service-client), tested as a
 * user gets it: built into an sdist and a wheel (the wheel from the sdist, its generated code taken
 * from gen/python by the build hook), installed with pytest into a fresh virtualenv, and run
 * against live servers, never imported from the source tree.
 *
 * Servers: plain on moto; one with API keys; one on local storage with small limits (its
 * directory handed to the integrity test); one with TLS and optional client certificates. Their
 * addresses go to pytest in FILES_* variables (clients/python/tests/support.py lists them). The
 * build tools and a wheelhouse of the test dependencies, at the floor versions the wheel accepts
 * (grpcio 1.85.1, protobuf 7.35.1), are installed once into the test cache, so later runs install
 * offline. Then every ```python block of clients/python/README.md runs against the plain server.
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedInstall, installVenv, step, venvPython, type RunResult } from "../support/cached-install.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { runCommand } from "../support/moto.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { issueCert, issueServerCert, makeCa } from "../support/test-certs.js";
import { MiB } from "../support/test-helpers.js";

const CLIENT_DIR = join(REPO_ROOT, "clients/python");

/** The build venv: the frontend, the backend (builds run without isolation, so offline) and pytest for the hook's tests. */
const BUILD_PINS = { build: "1.6.1", hatchling: "1.33.0", pytest: "9.2.0" };
/** The test venv's packages besides the wheel: the lowest grpcio and protobuf the wheel accepts, the test runner and the type checker with its stubs. */
const TEST_PINS = {
  grpcio: "1.85.1",
  protobuf: "7.35.1",
  pytest: "9.2.0",
  mypy: "2.4.1",
  "grpc-stubs": "1.53.0.6",
  "types-protobuf": "7.35.1.20260906",
};

// Obviously fake keys.
const KEYS = {
  tests: { key: "sk-fake-python-library-tests-000000", principal: "pylib-tests" },
  list: { key: "sk-fake-python-library-listing-0000", principal: "pylib-list" },
};
const SMALL_MAX_BYTES = MiB;
const SMALL_MAX_UPLOAD_BYTES = 4 * MiB;

const ensureBuildVenv = cachedInstall({
  what: "the Python build tools",
  name: "pylib-build-venv",
  pinned: BUILD_PINS,
  result: venvPython,
  install: (dir) => installVenv(dir, BUILD_PINS, ["build", "hatchling", "pytest"], ["--only-binary=:all:"]),
});

/** A directory of wheels for TEST_PINS and their dependencies, for `pip install --no-index`. */
const ensureWheelhouse = cachedInstall({
  what: "the Python client's test dependencies",
  name: "pylib-wheelhouse",
  pinned: TEST_PINS,
  result: (dir) => dir,
  present: (dir) => existsSync(dir) && readdirSync(dir).some((f) => f.startsWith(`grpcio-${TEST_PINS.grpcio}-`)),
  install: async (dir) => {
    const python = await ensureBuildVenv();
    const requirements = Object.entries(TEST_PINS).map(([name, version]) => `${name}==${version}`);
    await step("pip download of the test dependencies failed", python, ["-m", "pip", "download", "--only-binary=:all:", "--dest", dir, ...requirements], {
      env: pythonEnv(),
    });
  },
});

/** The environment for every Python process: nothing of the caller's Python setup, and no bytecode in the source tree. */
function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PYTHONUNBUFFERED: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
  for (const name of Object.keys(env)) if (name.startsWith("FILES_") || name === "PYTHONPATH" || name === "PYTHONHOME") delete env[name];
  return { ...env, ...extra };
}

function report(r: RunResult, servers: ServerProcess[] = []): string {
  return [
    `exit: ${r.code ?? `signal ${r.signal}`}`,
    `--- stdout ---\n${r.stdout}`,
    `--- stderr ---\n${r.stderr}`,
    ...servers.map((s, i) => `--- server ${i} output (last 20 lines) ---\n${s.output.slice(-20).join("\n")}`),
  ].join("\n");
}

let work: string;
let wheel: string;
let python: string; // the fresh venv's
let buildPython: string;
let plain: ServerProcess;
let auth: ServerProcess;
let small: ServerProcess;
let tls: ServerProcess;
let servers: ServerProcess[] = [];
let serverEnv: Record<string, string>;

const target = (s: ServerProcess) => `127.0.0.1:${s.port}`;

async function buildAndInstall(): Promise<void> {
  const [py, wheelhouse] = await Promise.all([ensureBuildVenv(), ensureWheelhouse()]);
  buildPython = py;
  const dist = join(work, "dist");
  // No flags: the sdist first, then the wheel from the unpacked sdist, which proves the sdist complete.
  await step("building clients/python failed", buildPython, ["-m", "build", "--no-isolation", "--outdir", dist, CLIENT_DIR], { env: pythonEnv() });
  const wheels = readdirSync(dist).filter((f) => f.endsWith(".whl"));
  expect(wheels, `built: ${readdirSync(dist).join(", ")}`).toHaveLength(1);
  wheel = join(dist, wheels[0]!);

  const venv = join(work, "venv");
  await step("creating the test venv failed", process.env.FILES_TEST_PYTHON ?? "python3", ["-m", "venv", venv], { env: pythonEnv(), timeoutMs: 120_000 });
  python = venvPython(venv);
  const requirements = Object.entries(TEST_PINS).map(([name, version]) => `${name}==${version}`);
  await step("installing the wheel into the test venv failed", python, ["-m", "pip", "install", "--no-index", "--find-links", wheelhouse, wheel, ...requirements], {
    env: pythonEnv(),
  });
}

async function startServers(): Promise<void> {
  const ca = makeCa("Files Python Library CA");
  const serverCert = issueServerCert(ca);
  const clientCert = issueCert(ca, { cn: "pylib-cert" });
  const [plainBucket, authBucket, tlsBucket, dir] = await Promise.all([
    createTestBucket("pylib-plain"),
    createTestBucket("pylib-auth"),
    createTestBucket("pylib-tls"),
    tempDir("python-library"),
  ]);
  const sqlite = (name: string) => ({ type: "sqlite", db_path: join(dir, `${name}.db`) });
  const storageDir = join(dir, "small-files");
  await mkdir(storageDir);
  [plain, auth, small, tls] = await Promise.all([
    startServer({ config: s3ProviderConfig(testS3Endpoint(), plainBucket, sqlite("plain")) }),
    startServer({ config: { ...s3ProviderConfig(testS3Endpoint(), authBucket, sqlite("auth")), server: { auth: { api_keys: Object.values(KEYS) } } } }),
    startServer({
      config: {
        provider_type: "inline::localfs",
        config: { storage_dir: storageDir, metadata_store: sqlite("small") },
        server: { limits: { max_file_bytes: SMALL_MAX_BYTES, max_part_bytes: SMALL_MAX_BYTES, max_upload_bytes: SMALL_MAX_UPLOAD_BYTES } },
      },
    }),
    startServer({
      https: true,
      config: {
        ...s3ProviderConfig(testS3Endpoint(), tlsBucket, sqlite("tls")),
        server: {
          tls: {
            cert_file: serverCert.certFile,
            key_file: serverCert.keyFile,
            client_ca_file: ca.certFile,
            client_auth: "optional",
            principal_from: "subject_cn",
          },
          // Callers without a certificate identify with a key.
          auth: { api_keys: Object.values(KEYS) },
        },
      },
    }),
  ]);
  servers = [plain, auth, small, tls];
  serverEnv = {
    FILES_TARGET: target(plain),
    FILES_AUTH_TARGET: target(auth),
    FILES_AUTH_TOKEN: KEYS.tests.key,
    FILES_LIST_TOKEN: KEYS.list.key,
    FILES_SMALL_TARGET: target(small),
    FILES_SMALL_MAX_BYTES: String(SMALL_MAX_BYTES),
    FILES_SMALL_MAX_UPLOAD_BYTES: String(SMALL_MAX_UPLOAD_BYTES),
    FILES_SMALL_STORAGE_DIR: storageDir,
    FILES_TLS_TARGET: target(tls),
    FILES_TLS_CA: ca.certFile,
    FILES_TLS_CERT: clientCert.certFile,
    FILES_TLS_KEY: clientCert.keyFile,
  };
}

beforeAll(async () => {
  work = await tempDir("python-library-build");
  // Building and installing (minutes on the first run, seconds later) beside the servers' start.
  await Promise.all([buildAndInstall(), startServers()]);
}, 900_000);

afterAll(async () => {
  for (const s of servers) expect(await s.stop()).toBe(0);
});

/** Counts from pytest's JUnit XML report. */
async function junitCounts(file: string): Promise<Record<"tests" | "failures" | "errors" | "skipped", number>> {
  const xml = await readFile(file, "utf8");
  const suite = /<testsuite\b([^>]*)>/.exec(xml)?.[1] ?? "";
  const count = (name: string) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(suite)?.[1] ?? NaN);
  return { tests: count("tests"), failures: count("failures"), errors: count("errors"), skipped: count("skipped") };
}

async function pytest(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ r: RunResult; counts: Awaited<ReturnType<typeof junitCounts>>; seconds: number }> {
  const xml = join(work, `pytest-${Date.now()}.xml`);
  const started = Date.now();
  // From the work directory, so nothing but the installed wheel can provide s3files_client.
  const r = await runCommand(python, ["-m", "pytest", "-q", "-rs", `--junitxml=${xml}`, join(CLIENT_DIR, "tests"), ...args], { env, cwd: work, timeoutMs });
  const seconds = (Date.now() - started) / 1000;
  if (!existsSync(xml)) throw new Error(`pytest wrote no report:\n${report(r, servers)}`);
  return { r, counts: await junitCounts(xml), seconds };
}

describe("the wheel", () => {
  it("the build hook moves the generated imports under the package (its own tests, in the build venv)", async () => {
    const r = await runCommand(buildPython, ["-m", "pytest", "-q", "-p", "no:cacheprovider", join(CLIENT_DIR, "build_tests")], { env: pythonEnv(), cwd: work, timeoutMs: 120_000 });
    expect(r.code, report(r)).toBe(0);
    expect(r.stdout).toMatch(/\b\d+ passed\b/);
  });

  it("holds the library, its types and the generated code under s3files_client, and no top-level package besides", async () => {
    const r = await runCommand(python, ["-c", "import json, sys, zipfile; print(json.dumps(zipfile.ZipFile(sys.argv[1]).namelist()))", wheel], { env: pythonEnv(), timeoutMs: 30_000 });
    expect(r.code, report(r)).toBe(0);
    const names = JSON.parse(r.stdout) as string[];
    const topLevel = new Set(names.map((n) => n.split("/")[0]));
    expect([...topLevel].sort()).toEqual(["s3_files_service_client-0.1.0.dist-info", "s3files_client"]);
    for (const name of ["py.typed", "__init__.py", "aio.py", "pb.py", "_gen/files/v1/files_pb2.py", "_gen/files/v1/files_pb2.pyi", "_gen/files/v1/files_pb2_grpc.py"]) {
      expect(names, name).toContain(`s3files_client/${name}`);
    }
    // The generated code is gen/python's, with only the imports and the module names changed.
    const compare = [
      "import difflib, json, sys, zipfile",
      "wheel, gen = zipfile.ZipFile(sys.argv[1]), sys.argv[2]",
      "diffs = {}",
      "for name in ['files_pb2.py', 'files_pb2.pyi', 'files_pb2_grpc.py']:",
      "    shipped = wheel.read('s3files_client/_gen/files/v1/' + name).decode().splitlines()",
      "    original = open(gen + '/' + name).read().splitlines()",
      "    diffs[name] = [l for l in difflib.unified_diff(original, shipped, n=0, lineterm='') if l[:1] in '+-' and l[:3] not in ('+++', '---')]",
      "print(json.dumps(diffs))",
    ].join("\n");
    const diff = await runCommand(python, ["-c", compare, wheel, join(REPO_ROOT, "gen/python/files/v1")], { env: pythonEnv(), timeoutMs: 30_000 });
    expect(diff.code, report(diff)).toBe(0);
    expect(JSON.parse(diff.stdout)).toEqual({
      "files_pb2.py": [
        "-_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'files.v1.files_pb2', _globals)",
        "+_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 's3files_client._gen.files.v1.files_pb2', _globals)",
      ],
      "files_pb2.pyi": [],
      "files_pb2_grpc.py": [
        "-from files.v1 import files_pb2 as files_dot_v1_dot_files__pb2",
        "+from s3files_client._gen.files.v1 import files_pb2 as files_dot_v1_dot_files__pb2",
      ],
    });
  });
});

describe("the installed library", () => {
  it("pytest: the sync and asyncio clients against live servers, nothing skipped", async () => {
    const { r, counts, seconds } = await pytest([], pythonEnv(serverEnv), 900_000);
    console.log(`[python-library] pytest: ${counts.tests} tests, ${counts.failures} failed, ${counts.errors} errors, ${counts.skipped} skipped in ${seconds.toFixed(1)} s`);
    expect(r.code, report(r, servers)).toBe(0);
    expect(counts, report(r, servers)).toEqual({ tests: counts.tests, failures: 0, errors: 0, skipped: 0 });
    expect(counts.tests).toBeGreaterThanOrEqual(90);
  }, 960_000);

  it("without the servers' variables, the server tests skip saying how they are run (and the rest pass)", async () => {
    // Wide lines, so the skip reason is not cut to 80 columns in the summary.
    const { r, counts } = await pytest([], pythonEnv({ COLUMNS: "1000" }), 120_000);
    expect(r.code, report(r)).toBe(0);
    expect(counts.skipped, report(r)).toBeGreaterThan(50);
    expect(counts.tests - counts.skipped, report(r)).toBeGreaterThan(10); // the wire and packaging tests need no server
    expect(r.stdout).toContain("npx vitest run test/e2e/python-library.test.ts");
    expect(r.stdout).toContain("FILES_TARGET");
  });

  it("mypy --strict: the installed package, the tests and the README examples", async () => {
    const examples = await writeExamples(join(work, "examples-typecheck"));
    const config = join(work, "mypy.ini");
    // The generated stubs module (files_pb2_grpc.py) is protoc's untyped code, which the README
    // tells strict users to exclude the same way; everything else is checked strictly.
    await writeFile(config, "[mypy]\nstrict = True\nuntyped_calls_exclude = s3files_client._gen\n\n[mypy-s3files_client._gen.*]\nignore_errors = True\n");
    // mypy takes a package or files, not both: the package as installed, then its users.
    for (const targets of [["-p", "s3files_client"], [join(CLIENT_DIR, "tests"), ...examples]]) {
      const r = await runCommand(python, ["-m", "mypy", "--config-file", config, ...targets], {
        env: pythonEnv({ MYPYPATH: join(CLIENT_DIR, "tests") }),
        cwd: work,
        timeoutMs: 300_000,
      });
      expect(r.code, report(r)).toBe(0);
      expect(r.stdout).toMatch(/^Success: no issues found/m);
    }
  }, 320_000);
});

/** The ```python blocks of the README, in order. */
async function readmeBlocks(): Promise<string[]> {
  const readme = await readFile(join(CLIENT_DIR, "README.md"), "utf8");
  return [...readme.matchAll(/^```python\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

async function writeExamples(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const blocks = await readmeBlocks();
  return Promise.all(
    blocks.map(async (code, i) => {
      const file = join(dir, `example_${String(i + 1).padStart(2, "0")}.py`);
      await writeFile(file, code);
      return file;
    }),
  );
}

describe("clients/python/README.md", () => {
  it("every ```python block runs against a live server, in order, in one directory", async () => {
    const dir = join(work, "examples");
    const files = await writeExamples(dir);
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const file of files) {
      const r = await runCommand(python, [file], { env: pythonEnv({ FILES_TARGET: target(plain) }), cwd: dir, timeoutMs: 120_000 });
      expect(r.code, `${file}:\n${await readFile(file, "utf8")}\n${report(r, [plain])}`).toBe(0);
    }
  }, 600_000);
});
