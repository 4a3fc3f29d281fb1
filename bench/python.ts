/**
 * The harness's Python side: two cached virtualenvs under the test cache dir, both pinned to the
 * full dependency closure in bench/python-constraints.txt (pip -c), so an upstream release cannot
 * change what runs without a change here (mcp 2.x, for one, breaks llama-stack 0.7.3's imports):
 *  - the reference server: llama-stack (its `remote::s3` files provider needs boto3);
 *  - the chart: matplotlib.
 * llama-stack 0.7 requires Python >= 3.12; Debian 12's python3 is 3.11, so the interpreter is
 * looked for: $FILES_BENCH_PYTHON, python3.13/python3.12/python3 on PATH, then pyenv's versions.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { cachedInstall, step, venvPython } from "../test/support/cached-install.js";
import { runCommand } from "../test/support/moto.js";
import { log } from "./lifecycle.js";

export const LLAMA_STACK_VERSION = "0.7.3";
export const BOTO3_VERSION = "1.44.5";
export const MATPLOTLIB_VERSION = "3.11.2";

const CONSTRAINTS_FILE = resolve(import.meta.dirname, "python-constraints.txt");
const constraintsHash = () => createHash("sha256").update(readFileSync(CONSTRAINTS_FILE)).digest("hex").slice(0, 16);

export interface FoundPython {
  python: string;
  version: string;
}

/** A Python >= 3.12 with venv, or the reasons none was found. */
export async function findPython(): Promise<FoundPython | { problems: string[] }> {
  const candidates: string[] = [];
  if (process.env.FILES_BENCH_PYTHON) candidates.push(process.env.FILES_BENCH_PYTHON);
  candidates.push("python3.13", "python3.12", "python3");
  const pyenvRoot = process.env.PYENV_ROOT ?? join(homedir(), ".pyenv");
  try {
    const versions = readdirSync(join(pyenvRoot, "versions"))
      .filter((v) => /^3\.(1[2-9])\.\d+$/.test(v))
      .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    candidates.push(...versions.map((v) => join(pyenvRoot, "versions", v, "bin", "python3")));
  } catch {
    /* no pyenv */
  }
  const problems: string[] = [];
  for (const python of candidates) {
    try {
      const r = await runCommand(python, ["-c", "import sys, venv; print('%d.%d.%d' % sys.version_info[:3]); assert sys.version_info >= (3, 12)"], {
        timeoutMs: 30_000,
      });
      if (r.code === 0) return { python, version: r.stdout.trim() };
      problems.push(`${python}: ${r.stdout.trim() ? `Python ${r.stdout.trim()}` : r.stderr.split("\n").at(-1)}`);
    } catch (err) {
      problems.push(`${python}: ${(err as Error).message}`);
    }
  }
  return { problems };
}

/** Creates a venv with `basePython` and installs `packages` (exact versions) under the constraints; checks `imports` load. */
async function installPinnedVenv(basePython: string, dir: string, packages: Record<string, string>, imports: string[]): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  const python = venvPython(dir);
  const requirements = Object.entries(packages).map(([name, version]) => `${name}==${version}`);
  await step(`'${basePython} -m venv ${dir}' failed`, basePython, ["-m", "venv", dir], { env, timeoutMs: 120_000 });
  await step(`pip install ${requirements.join(" ")} failed`, python, ["-m", "pip", "install", "-c", CONSTRAINTS_FILE, ...requirements], { env });
  await step("the installed packages do not load", python, ["-c", `import ${imports.join(", ")}`], { env, timeoutMs: 120_000 });
}

function pinnedVenv(what: string, name: string, packages: Record<string, string>, imports: string[], python: FoundPython) {
  return cachedInstall({
    what,
    name,
    pinned: { packages, constraints: constraintsHash(), python: python.version },
    result: (dir) => dir,
    present: (dir) => existsSync(venvPython(dir)),
    install: (dir) => installPinnedVenv(python.python, dir, packages, imports),
    log: (message) => log(message),
  })();
}

/** The venv directory holding llama-stack (its `llama` command is bin/llama). */
export function ensureLlamaStackVenv(python: FoundPython): Promise<string> {
  return pinnedVenv(
    `llama-stack ${LLAMA_STACK_VERSION} (Python ${python.version})`,
    "bench-llama-stack-venv",
    { "llama-stack": LLAMA_STACK_VERSION, boto3: BOTO3_VERSION },
    // The CLI module pulls in the whole server (where mcp 2.x failed); the provider pulls in boto3.
    ["llama_stack.cli.llama", "llama_stack.providers.remote.files.s3.files"],
    python,
  );
}

/** The venv directory holding matplotlib, for the chart. */
export function ensurePlotVenv(python: FoundPython): Promise<string> {
  return pinnedVenv(`matplotlib ${MATPLOTLIB_VERSION} (Python ${python.version})`, "bench-plot-venv", { matplotlib: MATPLOTLIB_VERSION }, ["matplotlib"], python);
}

/** The version a venv's package reports (for the results file). */
export async function installedVersion(venvDir: string, distribution: string): Promise<string> {
  const r = await runCommand(venvPython(venvDir), ["-c", `import importlib.metadata as m; print(m.version(${JSON.stringify(distribution)}))`], {
    timeoutMs: 30_000,
  });
  return r.code === 0 ? r.stdout.trim() : "unknown";
}

/**
 * The reference's upload limit: llama-stack 0.7.3's files router reads every upload with
 * read_upload_with_size_limit(file, DEFAULT_MAX_UPLOAD_SIZE_BYTES) (100 MiB) and answers 413 above
 * it; the run config cannot change it. Read from the installed package, so a new pin updates it.
 */
export async function referenceMaxUploadBytes(venvDir: string): Promise<number> {
  const r = await runCommand(
    venvPython(venvDir),
    ["-c", "from llama_stack_api.common.upload_safety import DEFAULT_MAX_UPLOAD_SIZE_BYTES as m; print(m)"],
    { timeoutMs: 60_000 },
  );
  const n = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isSafeInteger(n) || n <= 0) throw new Error(`cannot read llama-stack's upload limit: ${r.stderr || r.stdout}`);
  return n;
}
