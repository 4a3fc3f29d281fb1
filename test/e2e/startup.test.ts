/**
 * Start-up and shutdown as an operator sees them: bad configuration and unreachable storage end
 * the process quickly with one readable line on stderr; the seed document's blocks work verbatim;
 * SIGTERM on an idle server exits 0 promptly.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { HeadBucketCommand } from "@aws-sdk/client-s3";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { connectClient, grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { createTestBucket, listAllKeys, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { REPO_ROOT, s3ProviderConfig, serverCommand, startServer, type ServerProcess } from "../support/server-process.js";
import { startMoto } from "../support/moto.js";
import { MiB, sha256 } from "../support/test-helpers.js";

const seedBlock = (name: string) => readFileSync(join(REPO_ROOT, "test/fixtures/seed", `${name}.yaml`), "utf8");
/** A line of a JavaScript stack trace. */
const STACK_LINE = /^\s+at .+/m;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the server with --config (and --port 0, so a start that wrongly succeeds cannot take a real
 * port) until it exits, keeping stdout and stderr apart. `env` values of undefined are unset.
 */
async function runToExit(options: { config: object | string; env?: Record<string, string | undefined>; cwd?: string }, timeoutMs = 45_000): Promise<Exit> {
  const dir = await tempDir("startup-config");
  const path = join(dir, "files.yaml");
  await writeFile(path, typeof options.config === "string" ? options.config : stringify(options.config));
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "info" };
  delete env.FILES_CONFIG;
  delete env.PORT;
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  const { command, args } = serverCommand(["--config", path, "--port", "0"]);
  const started = Date.now();
  const child = spawn(command, args, { cwd: options.cwd ?? dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("exit", (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: Date.now() - started };
}

/** A start-up failure: a non-zero exit within `withinMs`, and one operator-worded line, no stack trace. */
function expectStartupFailure(exit: Exit, withinMs: number): void {
  const context = `exit ${exit.code}/${exit.signal} after ${exit.ms} ms\n--- stderr ---\n${exit.stderr}\n--- stdout ---\n${exit.stdout}`;
  expect(exit.signal, context).toBeNull();
  expect(exit.code, context).not.toBe(0);
  expect(exit.code, context).not.toBeNull();
  expect(exit.ms, context).toBeLessThan(withinMs);
  expect(exit.stderr, context).toMatch(/^files: cannot start: /);
  expect(exit.stderr, context).not.toMatch(STACK_LINE);
  expect(exit.stdout, context).not.toMatch(STACK_LINE);
}

async function bucketExists(bucket: string): Promise<boolean> {
  const s3 = testS3Client();
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  } finally {
    s3.destroy();
  }
}

async function roundTrip(client: FilesTestClient, size: number): Promise<string> {
  const data = randomBytes(size);
  const file = await client.upload({ filename: "startup.bin", purpose: FilePurpose.ASSISTANTS, sha256: sha256(data) }, [data]);
  expect(file.bytes).toBe(BigInt(size));
  expect(sha256((await client.download({ fileId: file.id })).data)).toBe(sha256(data));
  expect(await client.get(file.id)).toEqual(file);
  return file.id;
}

const servers: ServerProcess[] = [];
const clients: FilesTestClient[] = [];
afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.stop("SIGKILL");
});

describe("a bad configuration file", () => {
  const sqlite = () => ({ type: "sqlite", db_path: "./meta.db" });

  it("with a misspelt key exits non-zero within seconds, naming the key", async () => {
    const good = s3ProviderConfig(testS3Endpoint(), "some-bucket", sqlite()) as { config: Record<string, unknown> };
    const { bucket_name, ...rest } = good.config;
    const exit = await runToExit({ config: { ...good, config: { ...rest, bucket_nmae: bucket_name } } });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("bucket_nmae");
    // And the required key it was meant to be.
    expect(exit.stderr).toContain("config.bucket_name");
  });

  it("in the seed's style (no provider_type) with bucket_name misspelt names the typo, and only the typo", async () => {
    // Like the seed's access-keys block, with one typo. The S3-only keys beside it (region,
    // credentials) show it is an S3 config: they must not be reported as unrecognized too.
    const exit = await runToExit({
      config: `config:\n  bucket_nmae: my-bucket\n  region: us-east-1\n  aws_access_key_id: test\n  aws_secret_access_key: test\n`,
    });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("bucket_nmae");
    expect(exit.stderr).not.toMatch(/Unrecognized[^\n]*(region|aws_access_key_id)/);
    expect(exit.stderr).toContain("config.bucket_name");
  });

  it("with a misspelt top-level key exits non-zero, naming it", async () => {
    const exit = await runToExit({ config: { api: "files", provider_typ: "remote::s3", config: { bucket_name: "some-bucket" } } });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("provider_typ");
  });

  it("with an unknown metadata_store type exits non-zero within seconds, naming config.metadata_store", async () => {
    const exit = await runToExit({ config: s3ProviderConfig(testS3Endpoint(), "some-bucket", { type: "mysql", db_path: "./x.db" }) });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("config.metadata_store");
  });

  it("with an out-of-range value exits non-zero, naming the field", async () => {
    const exit = await runToExit({ config: s3ProviderConfig(testS3Endpoint(), "some-bucket", sqlite(), { part_size_bytes: 1024 }) });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("config.part_size_bytes");
  });
});

describe("the bucket", () => {
  it("missing, without auto_create_bucket: exits non-zero naming the bucket, and does not create it", async () => {
    const bucket = `t-missing-${randomBytes(6).toString("hex")}`;
    const dir = await tempDir("startup-missing-bucket");
    const exit = await runToExit({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "m.db") }) });
    expectStartupFailure(exit, 20_000);
    expect(exit.stderr).toContain(`'${bucket}'`);
    expect(exit.stderr).toMatch(/does not exist/);
    expect(exit.stderr).toMatch(/auto_create_bucket/);
    expect(await bucketExists(bucket)).toBe(false);
  });

  it("missing, with auto_create_bucket: true: the server creates it and serves", async () => {
    const bucket = `t-autocreate-${randomBytes(6).toString("hex")}`;
    const dir = await tempDir("startup-auto-create");
    expect(await bucketExists(bucket)).toBe(false);
    const server = await startServer({
      config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "m.db") }, { auto_create_bucket: true }),
    });
    servers.push(server);
    expect(await bucketExists(bucket)).toBe(true);
    const client = connectClient(server.baseUrl);
    const id = await roundTrip(client, 100_000);
    expect(await listAllKeys(bucket)).toEqual([id]);
    expect(await server.stop()).toBe(0);
  });
});

describe("an S3 endpoint that refuses our credentials", () => {
  it("exits non-zero saying access to the bucket is denied, and names the bucket", async () => {
    // A moto that enforces IAM: keys it does not know get a real 403 from the real SDK. It is
    // started even when S3_TEST_ENDPOINT is set, since not every endpoint can be made to refuse.
    const strict = await startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: "0" });
    try {
      const dir = await tempDir("startup-denied");
      const bucket = `t-denied-${randomBytes(6).toString("hex")}`;
      const exit = await runToExit({
        config: s3ProviderConfig(strict.endpoint, bucket, { type: "sqlite", db_path: join(dir, "d.db") }, { aws_access_key_id: "AKIAFAKEFAKEFAKE0000", aws_secret_access_key: "not-a-real-secret" }),
      });
      expectStartupFailure(exit, 30_000);
      expect(exit.stderr).toContain(`access denied to bucket '${bucket}'`);
      expect(exit.stderr).not.toContain("not-a-real-secret");
    } finally {
      await strict.stop();
    }
  });
});

describe("the seed's environment-variables block, verbatim", () => {
  const envFor = (bucket: string | undefined) => ({
    S3_BUCKET_NAME: bucket,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    S3_ENDPOINT_URL: testS3Endpoint(),
  });

  it("serves a round trip from the environment, with SQLite at ./data/files.db", async () => {
    const bucket = await createTestBucket("startup-env-vars");
    const cwd = await tempDir("startup-env-vars");
    const env = Object.fromEntries(Object.entries(envFor(bucket)).filter((e): e is [string, string] => e[1] !== undefined));
    const server = await startServer({ config: seedBlock("environment-variables"), env, cwd });
    servers.push(server);
    for (const client of [connectClient(server.baseUrl), grpcJsClient(server.baseUrl)]) {
      clients.push(client);
      const id = await roundTrip(client, 2 * MiB + 3);
      expect(await listAllKeys(bucket)).toContain(id);
    }
    expect(existsSync(join(cwd, "data", "files.db"))).toBe(true);
    expect(await server.stop()).toBe(0);
  });

  it("without S3_BUCKET_NAME exits non-zero naming S3_BUCKET_NAME", async () => {
    const cwd = await tempDir("startup-env-vars-missing");
    const exit = await runToExit({ config: seedBlock("environment-variables"), env: envFor(undefined), cwd });
    expectStartupFailure(exit, 10_000);
    expect(exit.stderr).toContain("S3_BUCKET_NAME");
    expect(exit.stderr).toMatch(/bucket_name/);
  });
});

describe("the seed's minio block, verbatim, with nothing listening on localhost:9000", () => {
  it("exits non-zero within 30 s saying it cannot reach the endpoint", async () => {
    // The premise: nothing answers on localhost:9000.
    const probe = await fetch("http://localhost:9000/").then(
      () => "answered",
      () => "refused",
    );
    expect(probe).toBe("refused");
    const cwd = await tempDir("startup-minio");
    const exit = await runToExit({ config: seedBlock("minio"), cwd }, 60_000);
    expectStartupFailure(exit, 30_000);
    expect(exit.stderr).toMatch(/localhost:9000|cannot reach/i);
    expect(exit.stderr.trim().split("\n")).toHaveLength(1);
    // The secret key is never echoed.
    expect(exit.stderr).not.toContain("minioadmin");
  });
});

describe("SIGTERM on an idle server", () => {
  const start = async (label: string) => {
    const dir = await tempDir(label);
    const bucket = await createTestBucket(label);
    const server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "m.db") }) });
    servers.push(server);
    return server;
  };
  const stopTimed = async (server: ServerProcess) => {
    const t0 = Date.now();
    const code = await server.stop("SIGTERM");
    return { code, ms: Date.now() - t0 };
  };

  it("that never had a connection exits 0 promptly", async () => {
    const server = await start("startup-sigterm-fresh");
    await new Promise((r) => setTimeout(r, 500)); // idle, well after start-up
    const { code, ms } = await stopTimed(server);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
    expect(server.output.join("\n")).toContain('"signal":"SIGTERM"');
  });

  it("sent the moment it logs 'listening' (as a supervisor may) exits 0, not killed by the signal", async () => {
    // The 'listening' line is the readiness signal: a SIGTERM right after it must find the
    // shutdown handler in place. Timing-dependent, hence several servers at once.
    const results = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const server = await startServer({ cwd: await tempDir(`startup-sigterm-race-${i}`) });
        servers.push(server);
        await server.stop("SIGTERM");
        return `exit code ${server.child.exitCode}, signal ${server.child.signalCode}`;
      }),
    );
    expect(results).toEqual(Array(6).fill("exit code 0, signal null"));
  });

  it("with idle HTTP/2 gRPC clients still connected exits 0 promptly", async () => {
    const server = await start("startup-sigterm-h2");
    const a = grpcJsClient(server.baseUrl);
    const b = connectClient(server.baseUrl, "grpc");
    clients.push(a, b);
    await roundTrip(a, 10_000);
    await roundTrip(b, 10_000);
    const { code, ms } = await stopTimed(server);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(5_000);
  });

  it("with an idle HTTP/1.1 keep-alive connection still open exits 0 promptly", async () => {
    const server = await start("startup-sigterm-h1");
    const agent = new http.Agent({ keepAlive: true });
    try {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        http
          .get(`${server.baseUrl}/healthz`, { agent }, (res) => {
            res.resume();
            res.once("end", () => resolve(res.statusCode));
          })
          .once("error", reject);
      });
      expect(status).toBe(200);
      // The socket now sits idle in the agent's pool, as a browser's or a proxy's would.
      expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
      const { code, ms } = await stopTimed(server);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(5_000);
    } finally {
      agent.destroy();
    }
  });
});
