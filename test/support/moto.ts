/**
 * Provisioning of a local S3 stand-in (moto) for the test suite.
 *
 * - `ensureMotoInstalled()` creates, once, a Python virtualenv holding `moto[server]`
 *   under the test cache dir (`$FILES_TEST_CACHE`, else `~/.cache/s3-files-service/`)
 *   and returns the path of its `moto_server`.
 * - `startMoto()` runs `moto_server` on a free loopback port and waits until it answers.
 *
 * Also exports two small process helpers that `postgres.ts` shares: `freePort()` and
 * `guardChildProcess()` (kills children on exit, and via a watchdog if this process dies hard).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as https from "node:https";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** pip requirement installed into the venv; override with FILES_TEST_MOTO_REQUIREMENT. */
const MOTO_REQUIREMENT = process.env.FILES_TEST_MOTO_REQUIREMENT ?? "moto[server]>=5,<6";
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const START_TIMEOUT_MS = 60_000;
const MARKER_NAME = ".files-test-installed.json";

// ---------------------------------------------------------------------------
// Generic helpers (shared with postgres.ts)
// ---------------------------------------------------------------------------

/** The test cache root: `$FILES_TEST_CACHE`, else `~/.cache/s3-files-service`. */
export function testCacheDir(): string {
  const fromEnv = process.env.FILES_TEST_CACHE;
  if (fromEnv && fromEnv.trim() !== "") return path.resolve(fromEnv);
  return path.join(os.homedir(), ".cache", "s3-files-service");
}

/** A currently free TCP port on 127.0.0.1 (listen on port 0, read the port, close). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("freePort: could not read the bound port"));
        return;
      }
      const port = address.port;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Keeps only the last `max` characters written to it (for stderr tails in error messages). */
export class OutputTail {
  private text = "";
  constructor(private readonly max = 8_000) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    const t = this.text.length > this.max ? this.text.slice(-this.max) : this.text;
    return t.trim();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface ChildGuard {
  /** Remove the exit hook and stop the watchdog (call once the child was stopped properly). */
  release(): void;
}

/**
 * Makes sure the process `pid` does not outlive this Node process:
 *  - on a normal `process.exit` it is sent `exitSignal` synchronously;
 *  - a detached shell watchdog polls this process every second and, once it is gone
 *    (SIGKILL, crash, Ctrl+C), sends `exitSignal` to `pid`, waits for it (SIGKILL after 10 s)
 *    and then removes `removeDir` if given.
 */
export function guardChildProcess(
  pid: number,
  opts: { exitSignal?: NodeJS.Signals; removeDir?: string } = {},
): ChildGuard {
  const signal = opts.exitSignal ?? "SIGTERM";
  const onExit = () => {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  };
  process.on("exit", onExit);

  // $1 parent pid, $2 child pid, $3 signal name (without SIG), $4 dir to remove ("" for none)
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'kill -s "$3" "$2" 2>/dev/null',
    "i=0",
    'while kill -0 "$2" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done',
    'kill -s KILL "$2" 2>/dev/null',
    'if [ -n "$4" ]; then sleep 0.5; rm -rf -- "$4"; fi',
  ].join("\n");
  let watchdog: ChildProcess | undefined;
  try {
    watchdog = spawn(
      "/bin/sh",
      ["-c", script, "files-test-watchdog", String(process.pid), String(pid), signal.replace(/^SIG/, ""), opts.removeDir ?? ""],
      { detached: true, stdio: "ignore" },
    );
    watchdog.on("error", () => {
      /* best effort only */
    });
    watchdog.unref();
  } catch {
    watchdog = undefined;
  }

  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      process.off("exit", onExit);
      if (watchdog?.pid !== undefined && watchdog.exitCode === null) {
        try {
          process.kill(watchdog.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    },
  };
}

/** Waits for a child to exit; resolves false on timeout. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.off("exit", onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once("exit", onExit);
  });
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing the tails of stdout and stderr. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const stdout = new OutputTail(16_000);
    const stderr = new OutputTail(16_000);
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        uid: options.uid,
        gid: options.gid,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (err) {
      reject(new Error(`could not run ${command}: ${(err as Error).message}`));
      return;
    }
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            child.kill("SIGKILL");
          }, options.timeoutMs)
        : undefined;
    child.stdout?.on("data", (d: Buffer) => stdout.push(d));
    child.stderr?.on("data", (d: Buffer) => stderr.push(d));
    child.once("error", (err) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

export function describeFailure(r: RunResult): string {
  const status = r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  const output = [r.stderr, r.stdout].filter((s) => s !== "").join("\n");
  return `${status}${output ? `: ${output}` : " (no output)"}`;
}

// ---------------------------------------------------------------------------
// moto installation
// ---------------------------------------------------------------------------

async function findPython(): Promise<string> {
  const explicit = process.env.FILES_TEST_PYTHON;
  const candidates = explicit ? [explicit] : ["python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python"];
  const problems: string[] = [];
  for (const candidate of candidates) {
    try {
      const r = await runCommand(candidate, ["-c", "import sys, venv; assert sys.version_info >= (3, 9); print(sys.executable)"], {
        timeoutMs: 30_000,
      });
      if (r.code === 0) return candidate;
      problems.push(`${candidate}: ${describeFailure(r)}`);
    } catch (err) {
      problems.push(`${candidate}: ${(err as Error).message}`);
    }
  }
  throw new Error(
    `moto install failed: no usable Python >= 3.9 with the venv module found (set FILES_TEST_PYTHON).\n${problems.join("\n")}`,
  );
}

/**
 * Cross-process lock (mkdir is atomic); stale locks of dead processes are taken over.
 * `what` names the install in messages ("moto", "the Python openai SDK").
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, what = "moto"): Promise<T> {
  const ownerFile = path.join(lockDir, "owner");
  const deadline = Date.now() + INSTALL_TIMEOUT_MS;
  let announced = false;
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      await fs.writeFile(ownerFile, `${process.pid}\n`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let owner = NaN;
      let ageMs = 0;
      try {
        owner = Number.parseInt(await fs.readFile(ownerFile, "utf8"), 10);
      } catch {
        /* owner file not written yet */
      }
      try {
        ageMs = Date.now() - (await fs.stat(lockDir)).mtimeMs;
      } catch {
        continue; // vanished: retry at once
      }
      const stale = Number.isFinite(owner) ? !pidAlive(owner) : ageMs > 60_000;
      if (stale || ageMs > INSTALL_TIMEOUT_MS) {
        await fs.rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${what} install failed: timed out waiting for lock ${lockDir}`);
      if (!announced) {
        announced = true;
        console.log(`[test-infra] waiting for another process (pid ${owner}) to finish installing ${what}...`);
      }
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
}

function venvPaths(venvDir: string) {
  const bin = path.join(venvDir, "bin");
  return {
    python: path.join(bin, "python"),
    motoServer: path.join(bin, "moto_server"),
    marker: path.join(venvDir, MARKER_NAME),
  };
}

function installedOk(venvDir: string): boolean {
  const p = venvPaths(venvDir);
  if (!existsSync(p.marker) || !existsSync(p.motoServer) || !existsSync(p.python)) return false;
  try {
    const marker = JSON.parse(readFileSync(p.marker, "utf8")) as { requirement?: string };
    return marker.requirement === MOTO_REQUIREMENT;
  } catch {
    return false;
  }
}

let installPromise: Promise<string> | undefined;

/**
 * Returns the path of `moto_server`, creating the cached venv first if needed
 * (`<cache>/moto-venv`, redone when the success marker is missing).
 */
export function ensureMotoInstalled(): Promise<string> {
  installPromise ??= doEnsureMotoInstalled().catch((err: unknown) => {
    installPromise = undefined;
    throw err;
  });
  return installPromise;
}

async function doEnsureMotoInstalled(): Promise<string> {
  const cacheDir = testCacheDir();
  const venvDir = path.join(cacheDir, "moto-venv");
  const paths = venvPaths(venvDir);
  if (installedOk(venvDir)) return paths.motoServer;

  await fs.mkdir(cacheDir, { recursive: true });
  return await withLock(path.join(cacheDir, "moto-venv.lock"), async () => {
    if (installedOk(venvDir)) return paths.motoServer; // another process finished meanwhile

    const started = Date.now();
    console.log(`[test-infra] installing ${MOTO_REQUIREMENT} into ${venvDir} (first run only, ~1 min)...`);
    await fs.rm(venvDir, { recursive: true, force: true }); // drop any half-finished install
    const python = await findPython();
    const logFile = path.join(cacheDir, "moto-install.log");

    const venv = await runCommand(python, ["-m", "venv", venvDir], { timeoutMs: 120_000 });
    if (venv.code !== 0) {
      await fs.rm(venvDir, { recursive: true, force: true });
      throw new Error(`moto install failed: '${python} -m venv ${venvDir}' failed: ${describeFailure(venv)}`);
    }

    const pipEnv: NodeJS.ProcessEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: "1", PIP_NO_INPUT: "1" };
    delete pipEnv.PYTHONHOME;
    delete pipEnv.PYTHONPATH;
    const pip = await runCommand(paths.python, ["-m", "pip", "install", MOTO_REQUIREMENT], {
      env: pipEnv,
      timeoutMs: INSTALL_TIMEOUT_MS,
    });
    await fs.writeFile(logFile, `${pip.stdout}\n${pip.stderr}\n`).catch(() => undefined);
    if (pip.code !== 0 || !existsSync(paths.motoServer)) {
      await fs.rm(venvDir, { recursive: true, force: true });
      throw new Error(`moto install failed: pip install '${MOTO_REQUIREMENT}' ${describeFailure(pip)}`);
    }

    const version = await runCommand(paths.python, ["-c", "import moto; print(moto.__version__)"], { timeoutMs: 60_000 });
    if (version.code !== 0) {
      await fs.rm(venvDir, { recursive: true, force: true });
      throw new Error(`moto install failed: installed moto does not import: ${describeFailure(version)}`);
    }
    await fs.writeFile(
      paths.marker,
      JSON.stringify({ requirement: MOTO_REQUIREMENT, version: version.stdout.trim(), installedAt: new Date().toISOString() }) + "\n",
    );
    console.log(`[test-infra] installed moto ${version.stdout.trim()} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return paths.motoServer;
  });
}

// ---------------------------------------------------------------------------
// moto server
// ---------------------------------------------------------------------------

export interface MotoServer {
  endpoint: string;
  /** The moto_server process, for tests that freeze (SIGSTOP/SIGCONT) or kill it. */
  pid: number;
  port: number;
  stop(): Promise<void>;
}

export interface StartMotoOptions {
  /** Listen on this port instead of a free one (to bring a killed moto back at the same endpoint). */
  port?: number;
  /** Serve HTTPS with this certificate and key (`moto_server -c CERT -k KEY`); the endpoint is then https://. */
  tls?: { certFile: string; keyFile: string };
}

class MotoStartError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

async function answersHttp(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return true; // any HTTP answer means the server is up
  } catch {
    return false;
  }
}

/** Any HTTPS answer, whoever signed the certificate (the readiness probe of a TLS moto). */
function answersHttps(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(`${endpoint}/`, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.once("end", () => resolve(true));
    });
    req.once("timeout", () => req.destroy(new Error("timed out")));
    req.once("error", () => resolve(false));
  });
}

async function startMotoOnce(motoServer: string, extraEnv: NodeJS.ProcessEnv, fixedPort?: number, tls?: StartMotoOptions["tls"]): Promise<MotoServer> {
  const port = fixedPort ?? (await freePort());
  const endpoint = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  const stderr = new OutputTail(8_000);
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", ...extraEnv };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;

  const tlsArgs = tls ? ["-c", tls.certFile, "-k", tls.keyFile] : [];
  const child = spawn(motoServer, ["-H", "127.0.0.1", "-p", String(port), ...tlsArgs], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  // Keep draining both pipes for the whole life of the server (moto logs every request).
  child.stdout?.on("data", (d: Buffer) => stderr.push(d));
  child.stderr?.on("data", (d: Buffer) => stderr.push(d));
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });
  await new Promise<void>((resolve) => {
    child.once("spawn", resolve);
    child.once("error", () => resolve());
  });
  if (spawnError || child.pid === undefined) {
    throw new MotoStartError(`moto_server failed to start: could not run ${motoServer}: ${spawnError?.message ?? "no pid"}`, false);
  }
  const guard = guardChildProcess(child.pid, { exitSignal: "SIGKILL" });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      if (!(await waitForExit(child, 5_000))) {
        child.kill("SIGKILL");
        await waitForExit(child, 5_000);
      }
    }
    guard.release();
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      guard.release();
      const tail = stderr.toString();
      throw new MotoStartError(
        `moto_server exited during startup (${child.signalCode ?? `exit code ${child.exitCode}`}) on port ${port}:\n${tail || "(no output)"}`,
        /address already in use|errno 98/i.test(tail),
      );
    }
    if (await (tls ? answersHttps(endpoint) : answersHttp(endpoint))) return { endpoint, pid: child.pid, port, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new MotoStartError(
        `moto_server did not answer HTTP on ${endpoint} within ${START_TIMEOUT_MS / 1000} s; output:\n${stderr.toString() || "(no output)"}`,
        false,
      );
    }
    await sleep(100);
  }
}

/** Installs moto if needed and starts `moto_server -H 127.0.0.1 -p <free port>`. */
/** `extraEnv` configures moto itself, e.g. INITIAL_NO_AUTH_ACTION_COUNT=0 to enforce credentials. */
export async function startMoto(extraEnv: NodeJS.ProcessEnv = {}, options: StartMotoOptions = {}): Promise<MotoServer> {
  const motoServer = await ensureMotoInstalled();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMotoOnce(motoServer, extraEnv, options.port, options.tls);
    } catch (err) {
      // Another process may have grabbed the free port between probing and binding: retry
      // (on a fixed port, the port of a just-killed moto may also still be closing).
      if (err instanceof MotoStartError && err.retryable && attempt < 3) {
        if (options.port !== undefined) await sleep(500);
        continue;
      }
      throw err;
    }
  }
}
