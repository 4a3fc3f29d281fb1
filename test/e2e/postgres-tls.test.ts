/**
 * TLS to PostgreSQL: throw-away clusters with `ssl=on` and a pg_hba.conf of `hostssl` lines only
 * (a plaintext client is refused), their certificates from a CA the test makes. The real server:
 * - ssl_mode verify-full + ssl_root_cert: starts and a file round-trips; the certificate names
 *   only the IP connected to (127.0.0.1), so the host check really is against that address.
 * - ssl_mode require: starts (encrypted, the certificate not checked).
 * - ssl_mode disable, or nothing at all: refused by the server, and the start-up error says TLS is needed.
 * - verify-full with a root certificate of another CA, or against a certificate that names another
 *   host (db.example; or localhost while connecting by 127.0.0.1): start-up errors naming the problem.
 * - the url's own ?sslmode= is honoured when ssl_mode is unset.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { startPostgres, type PostgresServer } from "../support/postgres.js";
import { runReconcile, writeConfigFile } from "../support/reconcile-process.js";
import { runServerToExit, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { issueServerCert, makeCa, type TestCa } from "../support/test-certs.js";
import { sha256 } from "../support/test-helpers.js";

let ca: TestCa;
/** Its certificate names 127.0.0.1 only. */
let byIp: PostgresServer;
/** Its certificate names db.example only. */
let otherName: PostgresServer;
/** Its certificate names localhost only. */
let localhostOnly: PostgresServer;
let bucket: string;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  ca = makeCa("PostgreSQL Private CA");
  [byIp, otherName, localhostOnly] = await Promise.all([
    startPostgres({ tls: issueServerCert(ca, { cn: "127.0.0.1", dns: [], ips: ["127.0.0.1"] }) }),
    startPostgres({ tls: issueServerCert(ca, { cn: "db.example", dns: ["db.example"], ips: [] }) }),
    startPostgres({ tls: issueServerCert(ca, { cn: "localhost", dns: ["localhost"], ips: [] }) }),
  ]);
  bucket = await createTestBucket("postgres-tls");
});

afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  await Promise.all([byIp, otherName, localhostOnly].map((pg) => pg?.stop()));
});

function configFor(store: object, keyPrefix: string): object {
  return s3ProviderConfig(testS3Endpoint(), bucket, { type: "postgres", ...store }, { key_prefix: `${keyPrefix}/` });
}

async function roundTrip(server: ServerProcess): Promise<void> {
  const openai = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: 60_000 });
  const data = randomBytes(50_000);
  const file = await openai.files.create({ file: await toFile(data, "pg-tls.bin"), purpose: "user_data" });
  expect((await openai.files.retrieve(file.id)).bytes).toBe(data.length);
  expect(sha256(Buffer.from(await (await openai.files.content(file.id)).arrayBuffer()))).toBe(sha256(data));
  expect((await openai.files.list()).data.map((f) => f.id)).toContain(file.id);
}

async function start(config: object): Promise<ServerProcess> {
  const server = await startServer({ config });
  servers.push(server);
  return server;
}

/** Runs the server to its exit and returns its one "cannot start" line. */
async function startupError(config: object): Promise<string> {
  const { code, output } = await runServerToExit({ config });
  expect(code).toBe(1);
  const lines = output.split("\n").filter((l) => l.startsWith("files: cannot start:"));
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

const target = (pg: PostgresServer) => `postgresql 127.0.0.1:${pg.port}/postgres`;

describe("PostgreSQL over TLS", () => {
  it("ssl_mode verify-full with ssl_root_cert: starts, and a file round-trips (reconcile connects the same way)", async () => {
    const config = configFor({ url: byIp.url, ssl_mode: "verify-full", ssl_root_cert: ca.certFile }, "verify-full");
    const server = await start(config);
    await roundTrip(server);
    const run = await runReconcile(["--dry-run", "--config", await writeConfigFile(config)]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
  });

  it("ssl_root_cert alone means verify-full, with host/port/db/user fields too", async () => {
    const url = new URL(byIp.url);
    const server = await start(
      configFor({ host: "127.0.0.1", port: Number(url.port), db: "postgres", user: url.username, ssl_root_cert: ca.certFile }, "root-cert-only"),
    );
    await roundTrip(server);
  });

  it("ssl_mode require: starts, the certificate not checked", async () => {
    // otherName's certificate would fail verify-full here; require does not look at it.
    const server = await start(configFor({ url: otherName.url, ssl_mode: "require" }, "require"));
    await roundTrip(server);
  });

  it("the url's own sslmode is honoured when ssl_mode is unset", async () => {
    const server = await start(configFor({ url: `${byIp.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.certFile)}` }, "url-sslmode"));
    await roundTrip(server);
  });

  it("ssl_mode disable (or nothing) against a hostssl-only server: a start-up error saying TLS is required, without the password", async () => {
    const withPassword = byIp.url.replace("files@", "files:Sup3r-Secret-Pw@");
    const line = await startupError(configFor({ url: withPassword, ssl_mode: "disable" }, "disable"));
    expect(line).toBe(
      `files: cannot start: metadata store: cannot open metadata database ${target(byIp)}: ` +
        'no pg_hba.conf entry for host "127.0.0.1", user "files", database "postgres", no encryption: ' +
        "the server accepts TLS connections only; set ssl_mode: require or verify-full",
    );
    expect(line).not.toContain("Sup3r-Secret-Pw");
    expect(await startupError(configFor({ url: byIp.url }, "unset"))).toMatch(/no encryption: the server accepts TLS connections only/);
  });

  it("verify-full with the root certificate of another CA: the error names the untrusted certificate", async () => {
    const other = makeCa("Unrelated CA");
    const line = await startupError(configFor({ url: byIp.url, ssl_mode: "verify-full", ssl_root_cert: other.certFile }, "other-ca"));
    expect(line).toBe(
      `files: cannot start: metadata store: cannot open metadata database ${target(byIp)}: ` +
        "the server's TLS certificate is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate); " +
        `ssl_root_cert ${other.certFile} does not hold the CA that signs it`,
    );
  });

  it("verify-full against a certificate for db.example, connecting by 127.0.0.1: the error names the host mismatch", async () => {
    const line = await startupError(configFor({ url: otherName.url, ssl_mode: "verify-full", ssl_root_cert: ca.certFile }, "db-example"));
    expect(line).toContain(`cannot open metadata database ${target(otherName)}: the server's TLS certificate does not name 127.0.0.1, the host connected to (ERR_TLS_CERT_ALTNAME_INVALID`);
  });

  it("verify-full checks the address connected to, not localhost: a localhost-only certificate fails by IP and passes by name", async () => {
    const line = await startupError(configFor({ url: localhostOnly.url, ssl_mode: "verify-full", ssl_root_cert: ca.certFile }, "localhost-by-ip"));
    expect(line).toContain("the server's TLS certificate does not name 127.0.0.1, the host connected to (ERR_TLS_CERT_ALTNAME_INVALID");
    const byName = await start(
      configFor({ url: localhostOnly.url.replace("@127.0.0.1:", "@localhost:"), ssl_mode: "verify-full", ssl_root_cert: ca.certFile }, "localhost-by-name"),
    );
    await roundTrip(byName);
  });

  it("ssl_root_cert naming a missing file: a start-up error naming the file", async () => {
    const missing = join(await tempDir("pg-tls-missing"), "root.crt");
    const line = await startupError(configFor({ url: byIp.url, ssl_mode: "verify-full", ssl_root_cert: missing }, "missing"));
    expect(line).toBe(
      `files: cannot start: metadata store: cannot open metadata database ${target(byIp)}: config.metadata_store.ssl_root_cert: cannot read ${missing}: no such file`,
    );
  });
});
