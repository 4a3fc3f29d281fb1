/**
 * Tools the tests install once into the test cache (grpcurl, code generators, Python packages):
 * each goes into its own directory with a marker naming exactly what was pinned, so a changed pin
 * reinstalls it; a cross-process lock keeps parallel test files from installing it twice; and a
 * failed install removes its directory, so no half-finished install is ever taken for a good one.
 */
import { existsSync, readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describeFailure, runCommand, testCacheDir, withLock } from "./moto.js";

export type RunResult = Awaited<ReturnType<typeof runCommand>>;

const MARKER_NAME = ".files-test-installed.json";
const INSTALL_TIMEOUT_MS = 10 * 60_000;

export interface InstallSpec<T> {
  /** Named in messages: "grpcurl v1.9.4", "the Python openai SDK". */
  what: string;
  /** A directory name under testCacheDir(), owned by this install. */
  name: string;
  /** What the marker must record for the install to count as current. */
  pinned: unknown;
  /** What ensure() resolves with, given the install directory. */
  result: (dir: string) => T;
  /** Files that must exist besides the marker. */
  present?: (dir: string) => boolean;
  /** Fills `dir` (created empty); throws to fail. */
  install: (dir: string) => Promise<void>;
  /** Where progress lines go (stderr for scripts whose stdout is data). */
  log?: (message: string) => void;
}

/** A memoised ensure(): installs on first use, returns the cached result afterwards, retries after a failure. */
export function cachedInstall<T>(spec: InstallSpec<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () =>
    (promise ??= ensure(spec).catch((err: unknown) => {
      promise = undefined;
      throw err;
    }));
}

async function ensure<T>(spec: InstallSpec<T>): Promise<T> {
  const cacheDir = testCacheDir();
  const dir = path.join(cacheDir, spec.name);
  const log = spec.log ?? ((message: string) => console.log(`[test-infra] ${message}`));
  const current = () => markerMatches(path.join(dir, MARKER_NAME), spec.pinned) && (spec.present?.(dir) ?? true);
  if (current()) return spec.result(dir);

  await fs.mkdir(cacheDir, { recursive: true });
  return withLock(
    path.join(cacheDir, `${spec.name}.lock`),
    async () => {
      if (current()) return spec.result(dir); // another process finished meanwhile
      await fs.rm(dir, { recursive: true, force: true });
      await fs.mkdir(dir, { recursive: true });
      const started = Date.now();
      log(`installing ${spec.what} into ${dir} (first run only)...`);
      try {
        await spec.install(dir);
      } catch (err) {
        await fs.rm(dir, { recursive: true, force: true });
        throw new Error(`${spec.what} could not be installed: ${(err as Error).message}`, { cause: err });
      }
      await fs.writeFile(path.join(dir, MARKER_NAME), JSON.stringify({ pinned: spec.pinned, installedAt: new Date().toISOString() }) + "\n");
      log(`installed ${spec.what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return spec.result(dir);
    },
    spec.what,
  );
}

function markerMatches(marker: string, pinned: unknown): boolean {
  if (!existsSync(marker)) return false;
  try {
    return JSON.stringify((JSON.parse(readFileSync(marker, "utf8")) as { pinned?: unknown }).pinned) === JSON.stringify(pinned);
  } catch {
    return false;
  }
}

/** Runs one install step; a command that cannot start or exits non-zero throws an error saying which. */
export async function step(what: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  let r: RunResult;
  try {
    r = await runCommand(command, args, { env: options.env, timeoutMs: options.timeoutMs ?? INSTALL_TIMEOUT_MS });
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  if (r.code !== 0) throw new Error(`${what}: ${describeFailure(r)}`);
  return r;
}

/** The interpreter of a venv at `dir`. */
export const venvPython = (dir: string) => path.join(dir, "bin", "python");

/**
 * Creates a venv at `dir`, pip-installs `packages` (name → exact version), then checks that the
 * `imports` load and that the venv reports exactly those versions.
 */
export async function installVenv(dir: string, packages: Record<string, string>, imports: string[], pipArgs: string[] = []): Promise<void> {
  const basePython = process.env.FILES_TEST_PYTHON ?? "python3";
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  const python = venvPython(dir);
  const requirements = Object.entries(packages).map(([name, version]) => `${name}==${version}`);
  await step(`'${basePython} -m venv ${dir}' failed (Python >= 3.9 with venv needed; FILES_TEST_PYTHON picks one)`, basePython, ["-m", "venv", dir], {
    env,
    timeoutMs: 120_000,
  });
  await step(`pip install ${requirements.join(" ")} failed`, python, ["-m", "pip", "install", ...pipArgs, ...requirements], { env });
  const check = await step(
    "the installed packages do not load",
    python,
    ["-c", `import json, importlib.metadata as m, ${imports.join(", ")}; print(json.dumps({n: m.version(n) for n in ${JSON.stringify(Object.keys(packages))}}))`],
    { env, timeoutMs: 60_000 },
  );
  const installed = JSON.stringify(JSON.parse(check.stdout.trim()));
  if (installed !== JSON.stringify(packages)) throw new Error(`expected ${JSON.stringify(packages)}, the venv has ${installed}`);
}
