/**
 * The official Python `openai` SDK, unchanged, against the REST API (files and uploads) of the
 * real server on moto S3 with SQLite metadata. The checks live in python/openai_roundtrip.py.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { runCommand } from "../support/moto.js";
import { ensureOpenAiPython, OPENAI_PYTHON_VERSION } from "../support/python-venv.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const SCRIPT = join(import.meta.dirname, "python", "openai_roundtrip.py");

let server: ServerProcess;
let python: string;
let dir: string;

beforeAll(async () => {
  // Installing the SDK on the first run can take a while; it is cached afterwards.
  const [py, bucket, tmp] = await Promise.all([ensureOpenAiPython(), createTestBucket("openai-python"), tempDir("openai-python")]);
  python = py;
  dir = tmp;
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }) });
}, 300_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

it(`the Python openai SDK ${OPENAI_PYTHON_VERSION} round-trips files and uploads`, async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1" };
  delete env.PYTHONHOME;
  delete env.PYTHONPATH;
  // Keep the SDK away from any real OpenAI settings of the developer's environment.
  delete env.OPENAI_BASE_URL;
  delete env.OPENAI_API_KEY;
  const r = await runCommand(python, [SCRIPT, `${server.baseUrl}/v1`, dir], { env, timeoutMs: 120_000 });
  const output = [
    `signal: ${r.signal ?? "none"}`,
    `--- stdout ---\n${r.stdout}`,
    `--- stderr ---\n${r.stderr}`,
    `--- server output (last 40 lines) ---\n${server.output.slice(-40).join("\n")}`,
  ].join("\n");
  expect(r.code, output).toBe(0);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
  // The pinned SDK has expires_after and upload_file_chunked, so neither step may be skipped.
  expect(summary, output).toMatchObject({
    ok: true,
    openai_version: OPENAI_PYTHON_VERSION,
    listed: 7,
    error_param_via: "e.param",
    expires_after: "checked",
    upload_file_chunked: "checked",
  });
}, 150_000);
