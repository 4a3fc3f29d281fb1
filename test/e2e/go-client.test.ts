/**
 * A Go client (grpc-go with the generated gen/go code) against the real server on moto S3 with
 * SQLite metadata. The checks live in test/clients/go/main.go; Go must be on PATH, and the first
 * run fetches grpc-go and protobuf from the Go module proxy (cached in GOMODCACHE afterwards).
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { describeFailure, runCommand } from "../support/moto.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const CLIENT_DIR = join(REPO_ROOT, "test/clients/go");

let server: ServerProcess;
let binary: string;

// The local toolchain only; go.sum is committed, so the default -mod=readonly holds.
const goEnv: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: "local", GOWORK: "off" };

beforeAll(async () => {
  const [bucket, dir] = await Promise.all([createTestBucket("go-client"), tempDir("go-client")]);
  binary = join(dir, "files-go-client");
  // Built before the server starts, so a missing Go or a compile error fails with its own message.
  const build = await runCommand("go", ["build", "-o", binary, "."], { cwd: CLIENT_DIR, env: goEnv, timeoutMs: 600_000 }).catch(
    (err: unknown) => {
      throw new Error(`the Go client needs Go on PATH: ${(err as Error).message}`);
    },
  );
  if (build.code !== 0) throw new Error(`building test/clients/go failed: ${describeFailure(build)}`);
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }) });
}, 660_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

it("grpc-go uploads 32 MiB, downloads ranges and the whole file, gets, lists and deletes", async () => {
  const r = await runCommand(binary, ["-addr", `127.0.0.1:${server.port}`], { env: goEnv, timeoutMs: 180_000 });
  const output = [
    `exit: ${r.code ?? `signal ${r.signal}`}`,
    `--- stdout ---\n${r.stdout}`,
    `--- stderr ---\n${r.stderr}`,
    `--- server output (last 40 lines) ---\n${server.output.slice(-40).join("\n")}`,
  ].join("\n");
  expect(r.code, output).toBe(0);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
  expect(summary, output).toMatchObject({ ok: true, bytes: 32 * 1024 * 1024 });
}, 200_000);
