/**
 * The real grpcurl, for tests that talk to the server the way an operator would, with no .proto
 * files. `ensureGrpcurl()` builds it once with `go install` into `<testCacheDir()>/grpcurl-<version>/`
 * (needs Go on the PATH and the Go module proxy) and returns the binary's path.
 */
import { existsSync, readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { describeFailure, runCommand, testCacheDir, withLock } from "./moto.js";

/** Pinned so a grpcurl release cannot change what the tests prove without a code change. */
export const GRPCURL_VERSION = "v1.9.4";
const MODULE = `github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}`;
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const MARKER_NAME = ".files-test-installed.json";

type RunResult = Awaited<ReturnType<typeof runCommand>>;

function fail(detail: string): never {
  throw new Error(`grpcurl ${GRPCURL_VERSION} could not be installed: ${detail}`);
}

// `go install` builds report "dev build" for -version, so a marker records what was installed.
function installedOk(binary: string, marker: string): boolean {
  if (!existsSync(binary) || !existsSync(marker)) return false;
  try {
    return (JSON.parse(readFileSync(marker, "utf8")) as { module?: string }).module === MODULE;
  } catch {
    return false;
  }
}

let installPromise: Promise<string> | undefined;

/** The path of the pinned grpcurl, installed on first use. */
export function ensureGrpcurl(): Promise<string> {
  installPromise ??= doEnsure().catch((err: unknown) => {
    installPromise = undefined;
    throw err;
  });
  return installPromise;
}

async function doEnsure(): Promise<string> {
  const cacheDir = testCacheDir();
  const dir = path.join(cacheDir, `grpcurl-${GRPCURL_VERSION}`);
  const binary = path.join(dir, "grpcurl");
  const marker = path.join(dir, MARKER_NAME);
  if (installedOk(binary, marker)) return binary;

  await fs.mkdir(cacheDir, { recursive: true });
  return await withLock(
    path.join(cacheDir, "grpcurl.lock"),
    async () => {
      if (installedOk(binary, marker)) return binary; // another process finished meanwhile
      await fs.rm(dir, { recursive: true, force: true }); // drop any half-finished install
      // The toolchain must be the installed one: never let go fetch another.
      const env: NodeJS.ProcessEnv = { ...process.env, GOBIN: dir, GOTOOLCHAIN: "local" };
      let goVersion: RunResult;
      try {
        goVersion = await runCommand("go", ["version"], { env, timeoutMs: 30_000 });
      } catch (err) {
        fail(`Go is required to build it and 'go' is not on the PATH (${(err as Error).message})`);
      }
      if (goVersion.code !== 0) fail(`'go version' failed: ${describeFailure(goVersion)}`);

      console.log(`[test-infra] installing ${MODULE} into ${dir} with ${goVersion.stdout.trim()} (first run only, ~1 min)...`);
      const started = Date.now();
      let r: RunResult;
      try {
        r = await runCommand("go", ["install", MODULE], { env, timeoutMs: INSTALL_TIMEOUT_MS });
      } catch (err) {
        fail(`'go install ${MODULE}' could not run: ${(err as Error).message}`);
      }
      if (r.code !== 0 || !existsSync(binary)) {
        await fs.rm(dir, { recursive: true, force: true });
        fail(`'go install ${MODULE}' failed: ${describeFailure(r)}`);
      }
      await fs.writeFile(marker, JSON.stringify({ module: MODULE, go: goVersion.stdout.trim(), installedAt: new Date().toISOString() }) + "\n");
      console.log(`[test-infra] installed grpcurl in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return binary;
    },
    "grpcurl",
  );
}

export interface GrpcurlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `grpcurl -plaintext <args...>` against `target` (host:port); `args` go before the target, `after` after it. */
export async function grpcurl(target: string, args: readonly string[], after: readonly string[] = []): Promise<GrpcurlResult> {
  const binary = await ensureGrpcurl();
  const r = await runCommand(binary, ["-plaintext", "-max-time", "30", ...args, target, ...after], { timeoutMs: 60_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}
