/**
 * A cached Python virtualenv holding the official `openai` SDK, for tests that drive the REST API
 * from Python. `ensureOpenAiPython()` creates `<testCacheDir()>/openai-venv` once (redone when its
 * marker does not name the pinned requirement) and returns the path of its interpreter.
 */
import { existsSync, readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describeFailure, runCommand, testCacheDir, withLock } from "./moto.js";

/** Pinned exactly so an SDK release cannot change what the test proves without a code change. */
export const OPENAI_PYTHON_VERSION = "3.57.0";
const REQUIREMENT = `openai==${OPENAI_PYTHON_VERSION}`;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const MARKER_NAME = ".files-test-installed.json";

type RunResult = Awaited<ReturnType<typeof runCommand>>;

function fail(detail: string): never {
  throw new Error(`the Python openai SDK could not be installed: ${detail}`);
}

function installedOk(python: string, marker: string): boolean {
  if (!existsSync(python) || !existsSync(marker)) return false;
  try {
    return (JSON.parse(readFileSync(marker, "utf8")) as { requirement?: string }).requirement === REQUIREMENT;
  } catch {
    return false;
  }
}

let installPromise: Promise<string> | undefined;

/** The interpreter of the cached venv with `openai==OPENAI_PYTHON_VERSION`, installed on first use. */
export function ensureOpenAiPython(): Promise<string> {
  installPromise ??= doEnsure().catch((err: unknown) => {
    installPromise = undefined;
    throw err;
  });
  return installPromise;
}

async function doEnsure(): Promise<string> {
  const cacheDir = testCacheDir();
  const venvDir = path.join(cacheDir, "openai-venv");
  const python = path.join(venvDir, "bin", "python");
  const marker = path.join(venvDir, MARKER_NAME);
  if (installedOk(python, marker)) return python;

  await fs.mkdir(cacheDir, { recursive: true });
  return await withLock(path.join(cacheDir, "openai-venv.lock"), async () => {
    if (installedOk(python, marker)) return python; // another process finished meanwhile
    await fs.rm(venvDir, { recursive: true, force: true }); // drop any half-finished install

    const basePython = process.env.FILES_TEST_PYTHON ?? "python3";
    const env: NodeJS.ProcessEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
    delete env.PYTHONHOME;
    delete env.PYTHONPATH;
    const step = async (what: string, command: string, args: string[], timeoutMs: number): Promise<RunResult> => {
      let r: RunResult;
      try {
        r = await runCommand(command, args, { env, timeoutMs });
      } catch (err) {
        await fs.rm(venvDir, { recursive: true, force: true });
        fail(`${what}: ${(err as Error).message}`);
      }
      if (r.code !== 0) {
        await fs.rm(venvDir, { recursive: true, force: true });
        fail(`${what}: ${describeFailure(r)}`);
      }
      return r;
    };

    console.log(`[test-infra] installing ${REQUIREMENT} into ${venvDir} (first run only)...`);
    await step(`'${basePython} -m venv ${venvDir}' failed`, basePython, ["-m", "venv", venvDir], 120_000);
    await step(`pip install '${REQUIREMENT}' failed`, python, ["-m", "pip", "install", REQUIREMENT], INSTALL_TIMEOUT_MS);
    const version = await step("the installed package does not import", python, ["-c", "import openai; print(openai.__version__)"], 60_000);
    if (version.stdout.trim() !== OPENAI_PYTHON_VERSION) {
      await fs.rm(venvDir, { recursive: true, force: true });
      fail(`expected openai ${OPENAI_PYTHON_VERSION}, the venv imports ${version.stdout.trim()}`);
    }
    await fs.writeFile(marker, JSON.stringify({ requirement: REQUIREMENT, installedAt: new Date().toISOString() }) + "\n");
    return python;
  }, "the Python openai SDK");
}
