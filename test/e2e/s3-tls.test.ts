/**
 * TLS to the S3 endpoint, against a moto of its own serving HTTPS with a certificate from a CA the
 * test makes (a private CA, as in-house MinIO or Ceph often have):
 * - ca_bundle: the server starts, and files round-trip over REST (multipart too) and gRPC; the
 *   objects really are in that moto. The reconcile command reaches it the same way.
 * - no ca_bundle, or one holding another CA: start-up fails with one line naming the certificate
 *   problem and the fix (exit code 1), not a generic "unavailable".
 * - verify_ssl: false: works, and start-up logs a warning naming the endpoint.
 * - ca_bundle naming a missing file or a file with no PEM certificate: a start-up error naming it.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { createS3Client } from "../../src/storage/s3-client.js";
import { tempDir } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { runReconcile, writeConfigFile } from "../support/reconcile-process.js";
import { runServerToExit, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { issueServerCert, makeCa, type TestCa } from "../support/test-certs.js";
import { chunked, MiB, sha256 } from "../support/test-helpers.js";

const PART = 5 * MiB;

let ca: TestCa;
let moto: MotoServer;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  ca = makeCa("S3 Private CA");
  moto = await startMoto({}, { tls: issueServerCert(ca) });
  expect(moto.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  await moto?.stop();
});

/** A config for the TLS moto: a bucket of its own (auto-created), SQLite metadata. */
async function configFor(label: string, extra: object): Promise<object> {
  const dir = await tempDir(label);
  const bucket = `t-tls-${label}-${randomBytes(4).toString("hex")}`;
  return s3ProviderConfig(moto.endpoint, bucket, { type: "sqlite", db_path: join(dir, "files.db") }, {
    auto_create_bucket: true,
    part_size_bytes: PART,
    ...extra,
  });
}

async function start(config: object): Promise<ServerProcess> {
  const server = await startServer({ config });
  servers.push(server);
  return server;
}

const bucketOf = (config: object) => (config as { config: { bucket_name: string } }).config.bucket_name;

/** Upload over REST and read back; returns the file id. */
async function restRoundTrip(server: ServerProcess, size: number): Promise<string> {
  const openai = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 });
  const data = randomBytes(size);
  const file = await openai.files.create({ file: await toFile(data, "tls.bin"), purpose: "user_data" });
  expect(file.bytes).toBe(size);
  const back = Buffer.from(await (await openai.files.content(file.id)).arrayBuffer());
  expect(sha256(back)).toBe(sha256(data));
  return file.id;
}

/** The one line the server wrote for a failed start (the rest is empty or log lines). */
function startupLine(output: string): string {
  const lines = output.split("\n").filter((l) => l.startsWith("files: cannot start:"));
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe("S3 endpoint with a private CA", () => {
  it("with ca_bundle: starts, and files round-trip over REST and gRPC into that endpoint", async () => {
    const config = await configFor("ca", { ca_bundle: ca.certFile });
    const server = await start(config);
    const restId = await restRoundTrip(server, 2 * PART + 123); // multipart
    const grpc = connectClient(server.baseUrl);
    const data = randomBytes(300_000);
    const uploaded = await grpc.upload({ filename: "grpc.bin", purpose: FilePurpose.ASSISTANTS }, chunked(data, 64 * 1024));
    const download = await grpc.download({ fileId: uploaded.id });
    expect(sha256(download.data)).toBe(sha256(data));

    // The bytes are in the TLS moto (read with a client that trusts the same CA).
    const s3 = createS3Client({ region: "us-east-1", endpointUrl: moto.endpoint, accessKeyId: "test", secretAccessKey: "test", caBundle: ca.certPem });
    try {
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucketOf(config), Key: restId }))).ContentLength).toBe(2 * PART + 123);
      expect((await s3.send(new HeadObjectCommand({ Bucket: bucketOf(config), Key: uploaded.id }))).ContentLength).toBe(data.length);
    } finally {
      s3.destroy();
    }
    // No warning about verification: it is on.
    expect(server.output.join("\n")).not.toMatch(/verification .* is OFF/);

    // The reconcile command builds its S3 client from the same config.
    const run = await runReconcile(["--dry-run", "--config", await writeConfigFile(config)]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
  });

  it("without ca_bundle: exit code 1 and one line naming the untrusted certificate and the fix", async () => {
    const { code, output } = await runServerToExit({ config: await configFor("noca", {}) });
    expect(code).toBe(1);
    const line = startupLine(output);
    expect(line).toMatch(
      new RegExp(
        `^files: cannot start: object storage: cannot reach object storage at ${moto.endpoint.replace(/\./g, "\\.")}: ` +
          "its certificate is not trusted \\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\\); " +
          "set config\\.ca_bundle to the PEM file of the CA that signs it$",
      ),
    );
    expect(output).not.toMatch(/try again later/);
  });

  it("with a ca_bundle of another CA: the error says that bundle does not hold the signing CA", async () => {
    const other = makeCa("Some Other CA");
    const { code, output } = await runServerToExit({ config: await configFor("otherca", { ca_bundle: other.certFile }) });
    expect(code).toBe(1);
    expect(startupLine(output)).toContain(`its certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE); config.ca_bundle (${other.certFile}) does not hold the CA`);
  });

  it("verify_ssl: false: works, and start-up warns that verification of that endpoint is off", async () => {
    const server = await start(await configFor("insecure", { verify_ssl: false }));
    await restRoundTrip(server, 10_000);
    await restRoundTrip(server, PART + 1); // parts: large bodies travel on the same agent
    const warnings = server.output
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string; endpoint?: string })
      .filter((e) => e.level === 40 && /certificate verification/.test(e.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain(`certificate verification of the S3 endpoint ${moto.endpoint} is OFF`);
    expect(warnings[0]!.msg).toMatch(/anyone on the network path can read and alter the files/);
    expect(warnings[0]!.endpoint).toBe(moto.endpoint);
  });

  it("ca_bundle naming a missing file, or a file with no PEM certificate: a start-up error naming the file", async () => {
    const dir = await tempDir("s3-tls-bad-bundle");
    const missing = join(dir, "no-such-ca.pem");
    const notPem = join(dir, "not-a-cert.pem");
    await writeFile(notPem, "this is not a certificate\n");
    const broken = join(dir, "broken.pem");
    await writeFile(broken, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");

    const a = await runServerToExit({ config: await configFor("missing", { ca_bundle: missing }) });
    expect(a.code).toBe(1);
    expect(startupLine(a.output)).toBe(`files: cannot start: object storage: config.ca_bundle: cannot read ${missing}: no such file`);

    const b = await runServerToExit({ config: await configFor("notpem", { ca_bundle: notPem }) });
    expect(b.code).toBe(1);
    expect(startupLine(b.output)).toBe(
      `files: cannot start: object storage: config.ca_bundle: ${notPem} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );

    const c = await runServerToExit({ config: await configFor("broken", { ca_bundle: broken }) });
    expect(c.code).toBe(1);
    expect(startupLine(c.output)).toMatch(new RegExp(`^files: cannot start: object storage: config\\.ca_bundle: certificate 1 in ${broken.replace(/[.]/g, "\\.")} does not parse`));
  });
});
