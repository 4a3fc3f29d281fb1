/**
 * The metadata database (a private PostgreSQL: the shared one stays up for other tests) taken down
 * as a crash would (`pg_ctl stop -m immediate`) under a running server, and brought back.
 * - At start: a clear one-line error and a non-zero exit.
 * - While down: list, get, download, delete and uploads answer 503 / UNAVAILABLE with a message that
 *   shows no SQL, host, port or password; an upload whose row insert fails leaves no object;
 *   /readyz 503 and gRPC health NOT_SERVING, while /healthz stays 200 and the process lives on.
 * - Back up: the same server process serves again (its pool reconnects), and nothing was lost.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { HealthCheckResponse_ServingStatus as Serving } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
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
import { startPostgres, type PostgresServer } from "../support/postgres.js";
import { sql } from "../support/reconcile-process.js";
import { s3ProviderConfig, serverCommand, startServer, type ServerProcess } from "../support/server-process.js";
import { chunked, eventually, MiB, sha256 } from "../support/test-helpers.js";

const PART = 5 * MiB;
const KEY_PREFIX = "faults-db/";
// Trust authentication ignores it, but it is in the URL the server holds: it must never be shown.
const DB_PASSWORD = `dbpw-${randomBytes(10).toString("hex")}`;

let pg: PostgresServer;
let dbUrl: string;
let bucket: string;
let config: object;
let server: ServerProcess;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  cleanups.push(() => pg.stop());
  const url = new URL(pg.url);
  url.password = DB_PASSWORD;
  dbUrl = url.toString();
  bucket = await createTestBucket("faults-database");
  config = s3ProviderConfig(testS3Endpoint(), bucket, { type: "postgres", url: dbUrl }, { key_prefix: KEY_PREFIX, part_size_bytes: PART });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** What only this database knows; the shared list adds stacks, SQL and low-level error names. */
function dbSecrets(): Forbidden {
  return [
    ["the database password", DB_PASSWORD],
    ["the database URL", /postgres(ql)?:\/\//],
    ["the database address", `127.0.0.1:${pg.port}`],
    ["the database port", `:${pg.port}`],
    ["the key prefix", KEY_PREFIX],
    ["an upload part key", "uploads/"],
    ["the bucket", bucket],
    ["S3's address", new URL(testS3Endpoint()).host],
  ];
}
const rest503 = (answer: RestAnswer, context: string) => expectRest503(answer, dbSecrets(), context);
const grpcCode = (err: unknown, context: string) => grpcFailure(err, dbSecrets(), context);

/** The server under test, started once (after the start-up test, which needs the database down). */
async function ensureServer(): Promise<void> {
  if (server) return;
  server = await startServer({ config });
  cleanups.push(() => server.stop("SIGKILL"));
}

const rowIds = async (): Promise<string[]> =>
  (await sql({ type: "postgres", url: pg.url }, "select id from openai_files order by id")).map((r) => String(r.id));

describe("the database down at start", () => {
  it("exits 1 within seconds with one line naming the database, never its password", async () => {
    await pg.halt();
    try {
      const path = join(await tempDir("faults-db-start"), "files.yaml");
      await writeFile(path, stringify(config));
      const { command, args } = serverCommand(["--config", path, "--port", "0"]);
      const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "info" };
      delete env.FILES_CONFIG;
      const t0 = Date.now();
      const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let stderr = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
      clearTimeout(timer);
      const context = `exit ${code} after ${Date.now() - t0} ms\n${stderr}\n${out}`;
      expect(code, context).toBe(1);
      expect(Date.now() - t0, context).toBeLessThan(15_000);
      expect(stderr.trim().split("\n"), context).toHaveLength(1);
      expect(stderr, context).toMatch(/^files: cannot start: metadata store: cannot open metadata database postgresql 127\.0\.0\.1:\d+\/postgres: /);
      expect(stderr + out, context).not.toContain(DB_PASSWORD);
      expect(stderr + out, context).not.toMatch(/\n\s+at /);
    } finally {
      await pg.restart();
    }
  });
});

describe("the database down while the server runs", () => {
  let kept: { id: string; data: Buffer };
  let upload: { id: string };

  beforeAll(async () => {
    await ensureServer();
    const data = randomBytes(PART + 10);
    const file = await connectClient(server.baseUrl).upload({ filename: "kept.bin", purpose: FilePurpose.USER_DATA }, [data]);
    kept = { id: file.id, data };
    // An Upload with one part, to be completed after the outage.
    const created = await fetchAnswer(`${server.baseUrl}/v1/uploads`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ filename: "parts.bin", purpose: "user_data", bytes: 2000, mime_type: "application/octet-stream" }),
    });
    expect(created.status, created.body).toBe(200);
    upload = JSON.parse(created.body) as { id: string };
  });

  it("answers 503 / UNAVAILABLE everywhere, shows nothing internal, leaves no object; readiness follows", async () => {
    const grpc = connectClient(server.baseUrl);
    const grpcJs = grpcJsClient(server.baseUrl);
    cleanups.push(async () => grpcJs.close());
    const part1 = await postPart(upload.id, randomBytes(1000));
    expect(part1.status, part1.body).toBe(200);
    const keysBefore = await listAllKeys(bucket);
    expect(await rowIds()).toEqual([kept.id]);

    // An upload in flight when the database goes: its bytes reach S3, then the row insert fails.
    const TOTAL = 24 * MiB;
    const restGate = gate();
    const grpcGate = gate();
    const restInFlight = restUpload(server.baseUrl, gatedBytes(TOTAL, 8 * MiB, restGate), TOTAL);
    const grpcInFlight = failureOf(grpc.upload({ filename: "in-flight.bin", purpose: FilePurpose.USER_DATA }, gatedBytes(TOTAL, 8 * MiB, grpcGate)));
    await Promise.all([restGate.reached, grpcGate.reached]);
    await eventually(async () => expect(await listMultipartUploads(bucket)).toHaveLength(2));

    await pg.halt();
    try {
      restGate.open();
      grpcGate.open();
      rest503(await restInFlight, "REST upload in flight when the database went down");
      expect(grpcCode(await grpcInFlight, "gRPC upload in flight when the database went down")).toBe(Code.Unavailable);

      // REST: list, get, content, delete, upload (small and multipart), Uploads create, part and complete.
      const base = server.baseUrl;
      rest503(await fetchAnswer(`${base}/v1/files`), "GET /v1/files");
      rest503(await fetchAnswer(`${base}/v1/files?limit=2&after=${kept.id}`), "GET /v1/files?after");
      rest503(await fetchAnswer(`${base}/v1/files/${kept.id}`), "GET /v1/files/{id}");
      rest503(await fetchAnswer(`${base}/v1/files/${kept.id}/content`), "GET /v1/files/{id}/content");
      rest503(await fetchAnswer(`${base}/v1/files/${kept.id}`, { method: "DELETE" }), "DELETE /v1/files/{id}");
      const form = new FormData();
      form.append("purpose", "user_data");
      form.append("file", new Blob([randomBytes(2000)]), "small.bin");
      rest503(await fetchAnswer(`${base}/v1/files`, { method: "POST", body: form }), "POST /v1/files (small)");
      const big = randomBytes(2 * PART + 5);
      rest503(await restUpload(base, chunked(big), big.length), "POST /v1/files (multipart)");
      rest503(
        await fetchAnswer(`${base}/v1/uploads`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ filename: "u.bin", purpose: "user_data", bytes: 10, mime_type: "text/plain" }),
        }),
        "POST /v1/uploads",
      );
      rest503(await postPart(upload.id, randomBytes(1000)), "POST /v1/uploads/{id}/parts");
      rest503(
        await fetchAnswer(`${base}/v1/uploads/${upload.id}/complete`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ part_ids: [JSON.parse(part1.body).id] }),
        }),
        "POST /v1/uploads/{id}/complete",
      );

      // gRPC, through two implementations.
      for (const client of [grpc, grpcJs]) {
        const name = client.name;
        expect(grpcCode(await failureOf(client.list({ limit: 10 })), `${name} ListFiles`)).toBe(Code.Unavailable);
        expect(grpcCode(await failureOf(client.get(kept.id)), `${name} GetFile`)).toBe(Code.Unavailable);
        expect(grpcCode(await failureOf(client.download({ fileId: kept.id })), `${name} DownloadFile`)).toBe(Code.Unavailable);
        expect(grpcCode(await failureOf(client.delete(kept.id)), `${name} DeleteFile`)).toBe(Code.Unavailable);
        const data = randomBytes(PART + 1);
        expect(grpcCode(await failureOf(client.upload({ filename: "g.bin", purpose: FilePurpose.USER_DATA }, chunked(data))), `${name} UploadFile`)).toBe(
          Code.Unavailable,
        );
      }

      // Readiness says so; liveness does not; the process lives on.
      const ready = await fetchAnswer(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expectNoLeak(ready.body, dbSecrets(), "/readyz");
      expect((await fetchAnswer(`${base}/healthz`)).status).toBe(200);
      expect(await healthStatus(base)).toBe(Serving.NOT_SERVING);
      expect(server.child.exitCode).toBeNull();

      // Every upload whose row could not be written removed its object: S3 holds what it held.
      expect(await listAllKeys(bucket)).toEqual(keysBefore);
      expect(await listMultipartUploads(bucket)).toEqual([]);
    } finally {
      await pg.restart();
    }
  });

  it("serves again once the database is back, in the same process, with nothing lost", async () => {
    const pid = server.child.pid;
    await eventually(async () => expect((await fetchAnswer(`${server.baseUrl}/readyz`)).status).toBe(200), 20_000);
    expect(await healthStatus(server.baseUrl)).toBe(Serving.SERVING);
    const grpc = connectClient(server.baseUrl);
    // Not only readiness: every kind of call works again, over both APIs.
    const listed = await fetchAnswer(`${server.baseUrl}/v1/files`);
    expect(listed.status, listed.body).toBe(200);
    expect((JSON.parse(listed.body) as { data: { id: string }[] }).data.map((f) => f.id)).toEqual([kept.id]);
    expect((await grpc.get(kept.id)).id).toBe(kept.id);
    expect(sha256((await grpc.download({ fileId: kept.id })).data)).toBe(sha256(kept.data));
    const data = randomBytes(2 * PART + 9);
    const restAnswer = await restUpload(server.baseUrl, chunked(data), data.length);
    expect(restAnswer.status, restAnswer.body).toBe(200);
    const fresh = JSON.parse(restAnswer.body) as { id: string };
    expect(sha256((await grpc.download({ fileId: fresh.id })).data)).toBe(sha256(data));
    // The Upload begun before the outage completes, with a part added after it.
    const parts = await sql({ type: "postgres", url: pg.url }, "select id from openai_upload_parts where upload_id = ?", [upload.id]);
    expect(parts).toHaveLength(1);
    const part2 = await postPart(upload.id, randomBytes(1000));
    expect(part2.status, part2.body).toBe(200);
    const done = await fetchAnswer(`${server.baseUrl}/v1/uploads/${upload.id}/complete`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ part_ids: [String(parts[0]!.id), JSON.parse(part2.body).id] }),
    });
    expect(done.status, done.body).toBe(200);
    const completed = JSON.parse(done.body) as { status: string; file: { id: string; bytes: number } };
    expect(completed.status).toBe("completed");
    expect(completed.file.bytes).toBe(2000);
    expect((await rowIds()).sort()).toEqual([kept.id, fresh.id, completed.file.id].sort());
    const deleted = await fetchAnswer(`${server.baseUrl}/v1/files/${fresh.id}`, { method: "DELETE" });
    expect(deleted.status, deleted.body).toBe(200);
    // Objects and rows agree: one object per file, no part left behind.
    expect((await listAllKeys(bucket)).sort()).toEqual([kept.id, completed.file.id].map((id) => KEY_PREFIX + id).sort());
    expect(server.child.pid).toBe(pid);
    expect(server.child.exitCode).toBeNull();
  });
});

describe("the database hung (every PostgreSQL process frozen with SIGSTOP) while the server runs", () => {
  // Unlike a stopped database, a frozen one accepts TCP and never answers: only the server's own
  // timeouts end a call. Connections already in the pool are the case that matters: warmed first.
  beforeAll(ensureServer);

  it("answers 503 / UNAVAILABLE within a bound, /readyz included, and recovers after the thaw", async () => {
    const base = server.baseUrl;
    const grpc = connectClient(base);
    await Promise.all(Array.from({ length: 6 }, () => fetchAnswer(`${base}/v1/files`)));
    const [id = "file-00000000000000000000000000000000"] = await rowIds();
    // A call with no answer within ANSWER_BOUND_MS shows as status -1.
    const answer = (url: string) =>
      fetchAnswer(url).catch((err: unknown): RestAnswer => ({ status: -1, body: `no answer: ${String(err)}`, ms: -1 }));
    await pg.freeze();
    try {
      const [list, get, grpcList, ready, health] = await Promise.all([
        answer(`${base}/v1/files`),
        answer(`${base}/v1/files/${id}`),
        // No answer at all shows as a timeout error, which the code check then fails.
        Promise.race([failureOf(grpc.list({ limit: 5 })), sleep(ANSWER_BOUND_MS).then(() => new Error(`ListFiles: no answer within ${ANSWER_BOUND_MS} ms`))]),
        answer(`${base}/readyz`),
        healthStatus(base),
      ]);
      console.log(
        `[faults-database] database hung: GET /v1/files ${list.status} (${list.ms} ms), GET /v1/files/{id} ${get.status} (${get.ms} ms), ` +
          `ListFiles ${String(grpcList)}, /readyz ${ready.status} (${ready.ms} ms), health ${Serving[health]}`,
      );
      expect(ready.status, `/readyz: ${ready.body}`).toBe(503);
      expect(ready.ms, "/readyz should answer about as promptly as gRPC health (5 s)").toBeLessThan(10_000);
      expect(health).toBe(Serving.NOT_SERVING);
      rest503(list, "GET /v1/files with the database hung");
      rest503(get, "GET /v1/files/{id} with the database hung");
      expect(grpcCode(grpcList, "ListFiles with the database hung"), String(grpcList)).toBe(Code.Unavailable);
      expect((await fetchAnswer(`${base}/healthz`)).status).toBe(200);
    } finally {
      await pg.thaw();
    }
    await eventually(async () => expect((await fetchAnswer(`${base}/readyz`)).status).toBe(200), 20_000);
    expect((await fetchAnswer(`${base}/v1/files`)).status).toBe(200);
  });
});

/** POST /v1/uploads/{id}/parts with `data` as the form's data field. */
async function postPart(uploadId: string, data: Buffer): Promise<RestAnswer> {
  const form = new FormData();
  form.append("data", new Blob([new Uint8Array(data)]), "part");
  return fetchAnswer(`${server.baseUrl}/v1/uploads/${uploadId}/parts`, { method: "POST", body: form });
}
