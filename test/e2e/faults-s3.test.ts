/**
 * S3 faults with real processes: a private moto (the shared one stays up for other tests) that is
 * unreachable at start, frozen (SIGSTOP) while a REST and a gRPC upload are in flight, thawed
 * (SIGCONT), and finally killed and brought back on the same port.
 * - At start: a clear one-line error and a non-zero exit (the documented choice).
 * - Mid-upload: 503 / UNAVAILABLE within a bound (not a hang, not 500), no row, no visible file;
 *   /readyz 503 and gRPC health NOT_SERVING while /healthz stays 200.
 * - After S3 returns: uploads work without a restart, /readyz is 200, and reconcile finds nothing
 *   visible half-written (leftover multipart uploads are reported and then removed).
 * - No client-visible error message carries a stack, a key, the bucket, credentials or S3's address.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { CreateBucketCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { HealthCheckResponse_ServingStatus as Serving } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { tempDir } from "../support/env.js";
import {
  ANSWER_BOUND_MS,
  expectNoLeak,
  expectRest503,
  failureOf,
  fetchAnswer,
  gate,
  gatedBytes,
  grpcFailure,
  healthStatus,
  restUpload,
  type Forbidden,
  type RestAnswer,
} from "../support/faults.js";
import { connectClient, grpcJsClient } from "../support/grpc-clients.js";
import { freePort, startMoto, type MotoServer } from "../support/moto.js";
import { runReconcile, writeConfigFile, type JsonReport } from "../support/reconcile-process.js";
import { s3ProviderConfig, serverCommand, startServer, type ServerProcess } from "../support/server-process.js";
import { bodyOf, chunked, eventually, MiB, sha256 } from "../support/test-helpers.js";

const PART = 5 * MiB;
const KEY_PREFIX = "faults-s3/";
// Distinctive credentials, so that a leak of either is detectable in any message.
const ACCESS_KEY = `AKIAFAULTS${randomBytes(5).toString("hex").toUpperCase()}`;
const SECRET_KEY = `faults-secret-${randomBytes(12).toString("hex")}`;
/** Per S3 attempt, and attempts per request: a frozen S3 fails requests in seconds. */
const FAST_FAIL = { request_timeout_seconds: 1, connect_timeout_seconds: 1, max_attempts: 2 };

let moto: MotoServer;
let s3: S3Client;
let bucket: string;
let dbPath: string;
let config: object;
let server: ServerProcess;
const cleanups: (() => Promise<unknown>)[] = [];

function s3For(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

async function keys(): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function pendingMultipart(): Promise<string[]> {
  const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.Key!);
}

function rowIds(): string[] {
  const db = new DatabaseSync(dbPath);
  try {
    return (db.prepare("select id from openai_files order by id").all() as { id: string }[]).map((r) => r.id);
  } finally {
    db.close();
  }
}

beforeAll(async () => {
  moto = await startMoto();
  cleanups.push(async () => {
    try {
      process.kill(moto.pid, "SIGCONT"); // a failed test may leave it frozen
    } catch {
      /* gone */
    }
    await moto.stop();
  });
  s3 = s3For(moto.endpoint);
  bucket = `faults-s3-${randomBytes(6).toString("hex")}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  dbPath = join(await tempDir("faults-s3"), "files.db");
  config = s3ProviderConfig(moto.endpoint, bucket, { type: "sqlite", db_path: dbPath }, {
    key_prefix: KEY_PREFIX,
    part_size_bytes: PART,
    aws_access_key_id: ACCESS_KEY,
    aws_secret_access_key: SECRET_KEY,
    ...FAST_FAIL,
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  s3?.destroy();
});

/** What only this file's S3 knows; the shared list adds stacks, SQL and low-level error names. */
function s3Secrets(): Forbidden {
  return [
    ["an upload part key", "uploads/"],
    ["the key prefix", KEY_PREFIX],
    ["the bucket", bucket],
    ["the access key", ACCESS_KEY],
    ["the secret key", SECRET_KEY],
    ["S3's address", new URL(moto.endpoint).host],
    ["S3's port", `:${moto.port}`],
  ];
}
const rest503 = (answer: RestAnswer, context: string) => expectRest503(answer, s3Secrets(), context);
const grpcCode = (err: unknown, context: string) => grpcFailure(err, s3Secrets(), context);

// ---------------------------------------------------------------------------------------------

describe("S3 down at start", () => {
  /** Runs the server with `cfg` until it exits (bounded), keeping stdout and stderr apart. */
  async function runToExit(cfg: object): Promise<{ code: number | null; stderr: string; stdout: string; ms: number }> {
    const path = join(await tempDir("faults-s3-start"), "files.yaml");
    await writeFile(path, stringify(cfg));
    const { command, args } = serverCommand(["--config", path, "--port", "0"]);
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "info" };
    delete env.FILES_CONFIG;
    const t0 = Date.now();
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    clearTimeout(timer);
    return { code, stderr, stdout, ms: Date.now() - t0 };
  }

  const expectCleanExit = (exit: Awaited<ReturnType<typeof runToExit>>, withinMs: number, endpoint: string) => {
    const context = `exit ${exit.code} after ${exit.ms} ms\n${exit.stderr}\n${exit.stdout}`;
    expect(exit.code, context).toBe(1);
    expect(exit.ms, context).toBeLessThan(withinMs);
    // One line an operator can act on: what failed and where. It may name the endpoint (an operator
    // log, not a client answer), but never the credentials.
    expect(exit.stderr.trim().split("\n"), context).toHaveLength(1);
    expect(exit.stderr, context).toMatch(/^files: cannot start: object storage: cannot reach object storage at /);
    expect(exit.stderr, context).toContain(endpoint);
    expect(exit.stderr + exit.stdout, context).not.toMatch(/\n\s+at /);
    expect(exit.stderr + exit.stdout, context).not.toContain(SECRET_KEY);
  };

  it("nothing listening on the endpoint (connection refused): exits 1 within seconds, naming the endpoint", async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const dir = await tempDir("faults-s3-refused");
    const exit = await runToExit(
      s3ProviderConfig(endpoint, bucket, { type: "sqlite", db_path: join(dir, "m.db") }, {
        aws_access_key_id: ACCESS_KEY,
        aws_secret_access_key: SECRET_KEY,
        ...FAST_FAIL,
      }),
    );
    expectCleanExit(exit, 15_000, endpoint);
    expect(exit.stderr).toMatch(/ECONNREFUSED/);
  });

  it("S3 hung (moto frozen with SIGSTOP): exits 1 once the attempts time out, not hanging", async () => {
    const dir = await tempDir("faults-s3-hung");
    process.kill(moto.pid, "SIGSTOP");
    try {
      const exit = await runToExit(
        s3ProviderConfig(moto.endpoint, bucket, { type: "sqlite", db_path: join(dir, "m.db") }, {
          aws_access_key_id: ACCESS_KEY,
          aws_secret_access_key: SECRET_KEY,
          ...FAST_FAIL,
        }),
      );
      // request_timeout_seconds × max_attempts (+ backoff) bounds the start-up check.
      expectCleanExit(exit, 15_000, moto.endpoint);
      expect(exit.stderr).toMatch(/timed out|ETIMEDOUT/);
    } finally {
      process.kill(moto.pid, "SIGCONT");
    }
  });
});

describe("readiness with S3 hung and the default (long) S3 timeouts", () => {
  // request_timeout_seconds defaults to 300 s per attempt: a probe must not wait that long to
  // learn that S3 does not answer. gRPC health bounds its check at 5 s; /readyz must be as prompt.
  it("/readyz answers 503 within seconds and gRPC health NOT_SERVING; both recover after the thaw", async () => {
    const dir = await tempDir("faults-s3-default-timeouts");
    const slow = await startServer({
      config: s3ProviderConfig(moto.endpoint, bucket, { type: "sqlite", db_path: join(dir, "m.db") }, {
        aws_access_key_id: ACCESS_KEY,
        aws_secret_access_key: SECRET_KEY,
      }),
    });
    cleanups.push(() => slow.stop("SIGKILL"));
    expect((await fetchAnswer(`${slow.baseUrl}/readyz`)).status).toBe(200);
    process.kill(moto.pid, "SIGSTOP");
    try {
      const [ready, health] = await Promise.all([
        fetchAnswer(`${slow.baseUrl}/readyz`).catch((err: unknown): RestAnswer => ({ status: -1, body: `no answer: ${String(err)}`, ms: -1 })),
        healthStatus(slow.baseUrl),
      ]);
      expect(health).toBe(Serving.NOT_SERVING);
      expect(ready.status, `/readyz: ${ready.body}`).toBe(503);
      expect(ready.ms).toBeLessThan(10_000);
      expect((await fetchAnswer(`${slow.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      process.kill(moto.pid, "SIGCONT");
    }
    await eventually(async () => expect((await fetchAnswer(`${slow.baseUrl}/readyz`)).status).toBe(200), 20_000);
    expect(await healthStatus(slow.baseUrl)).toBe(Serving.SERVING);
    expect(await slow.stop()).toBe(0);
  });
});

describe("S3 down mid-upload (moto frozen, then thawed)", () => {
  const TOTAL = 48 * MiB; // under the 64 MiB the server drains after an early answer, so the 503 is read
  let existing: { id: string; data: Buffer };

  beforeAll(async () => {
    // With S3 back, the configuration that just failed to start starts.
    server = await startServer({ config });
    cleanups.push(() => server.stop("SIGKILL"));
    expect(await healthStatus(server.baseUrl)).toBe(Serving.SERVING);
    const data = randomBytes(PART + 1000);
    const file = await connectClient(server.baseUrl).upload({ filename: "before.bin", purpose: FilePurpose.USER_DATA }, [data]);
    existing = { id: file.id, data };
  });

  it("in-flight REST and gRPC uploads end in 503 / UNAVAILABLE, with no row and no visible file; readiness follows", async () => {
    const keysBefore = await keys();
    const restGate = gate();
    const grpcGate = gate();
    const grpc = connectClient(server.baseUrl);
    const rest = restUpload(server.baseUrl, gatedBytes(TOTAL, 12 * MiB, restGate), TOTAL);
    const t0 = Date.now();
    const grpcUpload = grpc
      .upload({ filename: "big-grpc.bin", purpose: FilePurpose.USER_DATA }, gatedBytes(TOTAL, 12 * MiB, grpcGate))
      .then(
        (file) => ({ ok: true as const, file, ms: Date.now() - t0 }),
        (err: unknown) => ({ ok: false as const, err, ms: Date.now() - t0 }),
      );
    await Promise.all([restGate.reached, grpcGate.reached]);
    // Both uploads have a multipart upload open in S3 (parts written) before S3 goes away.
    await eventually(async () => expect(await pendingMultipart()).toHaveLength(2));

    process.kill(moto.pid, "SIGSTOP");
    try {
      restGate.open();
      grpcGate.open();
      const restAnswer = await rest;
      rest503(restAnswer, "REST upload while S3 is down");
      expect(restAnswer.ms).toBeLessThan(ANSWER_BOUND_MS);
      console.log(`[faults-s3] S3 frozen mid-upload: REST answered 503 after ${restAnswer.ms} ms`);
      const grpcAnswer = await grpcUpload;
      expect(grpcAnswer.ok, "the gRPC upload should fail").toBe(false);
      if (!grpcAnswer.ok) expect(grpcCode(grpcAnswer.err, "gRPC upload while S3 is down")).toBe(Code.Unavailable);
      expect(grpcAnswer.ms).toBeLessThan(ANSWER_BOUND_MS);
      console.log(`[faults-s3] S3 frozen mid-upload: gRPC failed after ${grpcAnswer.ms} ms`);

      // Nothing was recorded: the only file is the one from before.
      expect(rowIds()).toEqual([existing.id]);
      const listed = await fetchAnswer(`${server.baseUrl}/v1/files`);
      expect(listed.status).toBe(200);
      expect((JSON.parse(listed.body) as { data: { id: string }[] }).data.map((f) => f.id)).toEqual([existing.id]);

      // Readiness says so; liveness does not (the process is fine).
      const ready = await fetchAnswer(`${server.baseUrl}/readyz`);
      expect(ready.status).toBe(503);
      expectNoLeak(ready.body, s3Secrets(), "/readyz");
      expect((await fetchAnswer(`${server.baseUrl}/healthz`)).status).toBe(200);
      expect(await healthStatus(server.baseUrl)).toBe(Serving.NOT_SERVING);

      // Reads of stored bytes fail the same way, over REST and gRPC.
      rest503(await fetchAnswer(`${server.baseUrl}/v1/files/${existing.id}/content`), "REST download while S3 is down");
      const download = await failureOf(grpc.download({ fileId: existing.id }));
      expect(grpcCode(download, "gRPC download while S3 is down")).toBe(Code.Unavailable);
      // Small uploads too (one PutObject).
      const small = await failureOf(grpc.upload({ filename: "small.bin", purpose: FilePurpose.USER_DATA }, [randomBytes(1000)]));
      expect(grpcCode(small, "small gRPC upload while S3 is down")).toBe(Code.Unavailable);
      expect(rowIds()).toEqual([existing.id]);
      expect(server.child.exitCode).toBeNull();
    } finally {
      process.kill(moto.pid, "SIGCONT");
    }

    // S3 is back: the same server process recovers by itself.
    await eventually(async () => expect((await fetchAnswer(`${server.baseUrl}/readyz`)).status).toBe(200), 20_000);
    expect(await healthStatus(server.baseUrl)).toBe(Serving.SERVING);
    expect(rowIds()).toEqual([existing.id]);
    // Requests S3 had buffered while frozen run on the thaw, after the server gave up on them: a
    // late PUT may leave an object no row points at (invisible; reconcile below reports and removes it).
    const leftovers = (await keys()).filter((k) => !keysBefore.includes(k));
    console.log(`[faults-s3] after the thaw: ${leftovers.length} object(s) and ${(await pendingMultipart()).length} multipart upload(s) left over`);
  });

  it("after S3 returns: REST and gRPC uploads work on the same server, and earlier files read back", async () => {
    const pid = server.child.pid;
    const data = randomBytes(2 * PART + 17);
    const viaRest = await restUpload(server.baseUrl, bodyOf(data), data.length);
    expect(viaRest.status, viaRest.body).toBe(200);
    const restFile = JSON.parse(viaRest.body) as { id: string; bytes: number };
    expect(restFile.bytes).toBe(data.length);
    const grpcFile = await grpcJsClient(server.baseUrl).upload({ filename: "after.bin", purpose: FilePurpose.USER_DATA }, chunked(data));
    const grpc = connectClient(server.baseUrl);
    expect(sha256((await grpc.download({ fileId: restFile.id })).data)).toBe(sha256(data));
    expect(sha256((await grpc.download({ fileId: grpcFile.id })).data)).toBe(sha256(data));
    expect(sha256((await grpc.download({ fileId: existing.id })).data)).toBe(sha256(existing.data));
    expect(rowIds().sort()).toEqual([existing.id, restFile.id, grpcFile.id].sort());
    expect(server.child.pid).toBe(pid);
    expect(server.child.exitCode).toBeNull();
  });

  it("reconcile finds nothing visible half-written; leftover multipart uploads are reported, then removed", async () => {
    const configPath = await writeConfigFile(config);
    const dry = await runReconcile(["--dry-run", "--json", "--grace-seconds", "0", "--config", configPath]);
    const report = (JSON.parse(dry.stdout) as JsonReport).report;
    const rows = new Set(rowIds().map((id) => KEY_PREFIX + id));
    // Every row has its object; any object without a row is reported.
    expect(report.missingObjects).toEqual([]);
    const orphans = (await keys()).filter((k) => !rows.has(k));
    expect(report.orphanObjects.map((o) => o.key).sort()).toEqual(orphans);
    expect(report.unknownObjects).toEqual([]);
    // Unfinished multipart uploads (if S3 never got the abort) belong to no file.
    const pending = await pendingMultipart();
    expect(report.incompleteWrites.map((w) => w.key).sort()).toEqual([...pending].sort());
    for (const key of pending) expect(rows.has(key), key).toBe(false);
    expect(dry.code).toBe(pending.length + orphans.length === 0 ? 0 : 1);

    const apply = await runReconcile(["--apply", "--grace-seconds", "0", "--config", configPath]);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(await pendingMultipart()).toEqual([]);
    expect((await keys()).filter((k) => !rows.has(k))).toEqual([]);
    const clean = await runReconcile(["--dry-run", "--config", configPath]);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toContain("Result: consistent");
  });
});

describe("S3 killed, then restarted on the same port", () => {
  it("answers 503 at once while refused, and serves again once S3 is back, without a restart", async () => {
    const pid = server.child.pid;
    const port = moto.port;
    process.kill(moto.pid, "SIGKILL");
    await moto.stop(); // reaps it and releases its guard
    const grpc = connectClient(server.baseUrl);

    const upload = await restUpload(server.baseUrl, bodyOf(randomBytes(2 * PART)), 2 * PART);
    rest503(upload, "REST upload with S3 refusing connections");
    const failed = await failureOf(grpc.upload({ filename: "refused.bin", purpose: FilePurpose.USER_DATA }, [randomBytes(1000)]));
    expect(grpcCode(failed, "gRPC upload with S3 refusing connections")).toBe(Code.Unavailable);
    const ready = await fetchAnswer(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.ms).toBeLessThan(10_000);
    expect((await fetchAnswer(`${server.baseUrl}/healthz`)).status).toBe(200);
    expect(await healthStatus(server.baseUrl)).toBe(Serving.NOT_SERVING);
    const before = rowIds();

    // moto keeps its state in memory: the new one starts empty and the bucket is made again.
    moto = await startMoto({}, { port });
    s3.destroy();
    s3 = s3For(moto.endpoint);
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await eventually(async () => expect((await fetchAnswer(`${server.baseUrl}/readyz`)).status).toBe(200), 20_000);
    expect(await healthStatus(server.baseUrl)).toBe(Serving.SERVING);
    const data = randomBytes(PART + 3);
    const file = await grpc.upload({ filename: "back.bin", purpose: FilePurpose.USER_DATA }, [data]);
    expect(sha256((await grpc.download({ fileId: file.id })).data)).toBe(sha256(data));
    expect(rowIds().sort()).toEqual([...before, file.id].sort());
    expect(server.child.pid).toBe(pid);
    expect(server.child.exitCode).toBeNull();
  });
});
