/**
 * The real grpcurl, for tests that talk to the server the way an operator would, with no .proto
 * files. `ensureGrpcurl()` builds it once with `go install` into `<testCacheDir()>/grpcurl-<version>/`
 * (needs Go on the PATH and the Go module proxy) and returns the binary's path.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { cachedInstall, step } from "./cached-install.js";
import { runCommand } from "./moto.js";

/** Pinned so a grpcurl release cannot change what the tests prove without a code change. */
export const GRPCURL_VERSION = "v1.9.4";
const MODULE = `github.com/fullstorydev/grpcurl/cmd/grpcurl@${GRPCURL_VERSION}`;

/** The path of the pinned grpcurl, built on first use (`go install` builds report "dev build", so the marker says what it is). */
export const ensureGrpcurl = cachedInstall({
  what: `grpcurl ${GRPCURL_VERSION}`,
  name: `grpcurl-${GRPCURL_VERSION}`,
  pinned: MODULE,
  result: (dir) => path.join(dir, "grpcurl"),
  present: (dir) => existsSync(path.join(dir, "grpcurl")),
  install: async (dir) => {
    // The toolchain must be the installed one: never let go fetch another.
    const env: NodeJS.ProcessEnv = { ...process.env, GOBIN: dir, GOTOOLCHAIN: "local" };
    await step("Go is required to build it, and 'go version' failed", "go", ["version"], { env, timeoutMs: 30_000 });
    await step(`'go install ${MODULE}' failed`, "go", ["install", MODULE], { env });
    if (!existsSync(path.join(dir, "grpcurl"))) throw new Error(`'go install ${MODULE}' left no binary in ${dir}`);
  },
});

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
