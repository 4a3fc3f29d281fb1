/**
 * A Python client (grpcio with the generated gen/python code) against the real server on moto S3
 * with SQLite metadata. The checks live in test/clients/python/files_client.py; it runs in the
 * venv of the pinned grpcio and protobuf from test/support/codegen-tools.ts.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CODEGEN_VERSIONS, ensurePythonGrpc } from "../support/codegen-tools.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { runCommand } from "../support/moto.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const SCRIPT = join(REPO_ROOT, "test/clients/python/files_client.py");

let server: ServerProcess;
let python: string;

beforeAll(async () => {
  // Installing grpcio on the first run takes a while; it is cached afterwards.
  const [py, bucket, dir] = await Promise.all([ensurePythonGrpc(), createTestBucket("python-client"), tempDir("python-client")]);
  python = py;
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }) });
}, 600_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

it(`grpcio ${CODEGEN_VERSIONS.grpcio} uploads 32 MiB, downloads ranges and the whole file, gets, lists and deletes`, async () => {
  // No bytecode: the script imports gen/python, which must stay exactly what buf generates.
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  const r = await runCommand(python, [SCRIPT, `127.0.0.1:${server.port}`], { env, timeoutMs: 180_000 });
  const output = [
    `exit: ${r.code ?? `signal ${r.signal}`}`,
    `--- stdout ---\n${r.stdout}`,
    `--- stderr ---\n${r.stderr}`,
    `--- server output (last 40 lines) ---\n${server.output.slice(-40).join("\n")}`,
  ].join("\n");
  expect(r.code, output).toBe(0);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
  expect(summary, output).toMatchObject({ ok: true, bytes: 32 * 1024 * 1024, grpcio: CODEGEN_VERSIONS.grpcio });
}, 200_000);
