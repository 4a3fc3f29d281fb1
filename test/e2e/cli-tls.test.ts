/**
 * The `files` CLI against a TLS server: --ca-file (and $FILES_CA_FILE) to trust its certificate,
 * --cert/--key (and $FILES_CERT/$FILES_KEY) for mutual TLS, the principal a client certificate
 * names, and one clear line, never a stack trace, for each way the TLS side can fail.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/env.js";
import { REPO_ROOT, startServer, type ServerProcess } from "../support/server-process.js";
import { issueCert, issueServerCert, makeCa, type TestCa, type TestCert } from "../support/test-certs.js";
import { MiB, sha256 } from "../support/test-helpers.js";

const CLI = join(REPO_ROOT, "dist/src/cli/main.js");
const CLI_ENV = ["FILES_URL", "FILES_TOKEN", "FILES_CA_FILE", "FILES_CERT", "FILES_KEY"];

interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CLI_ENV) delete childEnv[name];
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...childEnv, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => stdout.push(d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }));
  });
}

function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(`expected exit code ${code}, got ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
  }
}

/** Exit 1 with exactly one line on stderr matching `line`, and nothing on stdout. */
function expectOneLineFailure(result: CliResult, line: RegExp): void {
  expectExit(result, 1);
  expect(result.stderr).toMatch(/^files: [^\n]+\n$/);
  expect(result.stderr).toMatch(line);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout.length).toBe(0);
}

let ca: TestCa;
let otherCa: TestCa;
let serverCert: TestCert;
let alice: TestCert;
let bob: TestCert;
let dir: string;

beforeAll(async () => {
  ca = makeCa("Files CLI Test CA");
  otherCa = makeCa("Some Other CA");
  serverCert = issueServerCert(ca);
  alice = issueCert(ca, { cn: "alice" });
  bob = issueCert(ca, { cn: "bob" });
  dir = await tempDir("cli-tls");
});

async function startTlsServer(label: string, tls: Record<string, unknown> = {}): Promise<ServerProcess> {
  const data = await tempDir(label);
  return startServer({
    https: true,
    config: {
      provider_type: "inline::localfs",
      config: { storage_dir: join(data, "files"), metadata_store: { type: "sqlite", db_path: join(data, "files.db") } },
      server: { tls: { cert_file: serverCert.certFile, key_file: serverCert.keyFile, ...tls } },
    },
  });
}

describe("files CLI over TLS", () => {
  let server: ServerProcess;
  let url: string;

  beforeAll(async () => {
    server = await startTlsServer("cli-tls-server");
    url = server.baseUrl;
  });
  afterAll(async () => {
    if (server) expect(await server.stop()).toBe(0);
  });

  it("uploads, lists, downloads the same bytes and deletes with --ca-file", async () => {
    const data = randomBytes(3 * MiB + 777);
    const path = join(dir, "over-tls.bin");
    await writeFile(path, data);
    const trust = ["--url", url, "--ca-file", ca.certFile];

    const up = await runCli(["upload", path, ...trust, "--json"]);
    expectExit(up, 0);
    const file = JSON.parse(up.stdout.toString()) as { id: string; bytes: number; sha256: string; filename: string };
    expect(file).toMatchObject({ bytes: data.length, sha256: sha256(data), filename: "over-tls.bin" });

    const listed = await runCli(["list", ...trust, "--json"]);
    expectExit(listed, 0);
    expect((JSON.parse(listed.stdout.toString()) as { data: { id: string }[] }).data.map((f) => f.id)).toContain(file.id);

    const out = join(dir, "over-tls.copy");
    expectExit(await runCli(["download", file.id, ...trust, "-o", out]), 0);
    const copy = await readFile(out);
    expect(copy.length).toBe(data.length);
    expect(copy.equals(data)).toBe(true);
    // And to stdout.
    const piped = await runCli(["download", file.id, ...trust, "-o", "-"]);
    expectExit(piped, 0);
    expect(piped.stdout.equals(data)).toBe(true);

    expectExit(await runCli(["delete", file.id, ...trust]), 0);
    const gone = await runCli(["get", file.id, ...trust]);
    expectOneLineFailure(gone, new RegExp(`^files: no such file: ${file.id}\\n$`));
  });

  it("takes the URL and the CA from $FILES_URL and $FILES_CA_FILE", async () => {
    const result = await runCli(["list", "--json"], { FILES_URL: url, FILES_CA_FILE: ca.certFile });
    expectExit(result, 0);
    expect(JSON.parse(result.stdout.toString())).toMatchObject({ object: "list" });
    // The flag wins over the environment.
    const flagWins = await runCli(["list", "--ca-file", ca.certFile], { FILES_URL: url, FILES_CA_FILE: otherCa.certFile });
    expectExit(flagWins, 0);
  });

  it("says in one line that the certificate is not trusted, without --ca-file or with the wrong CA", async () => {
    const untrusted = /^files: cannot reach the service at https:\/\/127\.0\.0\.1:\d+: its certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\); pass --ca-file/;
    expectOneLineFailure(await runCli(["list", "--url", url]), untrusted);
    expectOneLineFailure(await runCli(["list", "--url", url, "--ca-file", otherCa.certFile]), untrusted);
    expect((await runCli(["list", "--url", url])).stderr).toContain(url);
  });

  it("says when the certificate is not for the URL's host, and when a plaintext URL meets the TLS port", async () => {
    // A server certificate naming only another host.
    const elsewhere = issueCert(ca, { cn: "elsewhere.test", dns: ["elsewhere.test"] });
    const other = await startServer({
      https: true,
      config: {
        provider_type: "inline::localfs",
        config: { storage_dir: join(dir, "elsewhere-files"), metadata_store: { type: "sqlite", db_path: join(dir, "elsewhere.db") } },
        server: { tls: { cert_file: elsewhere.certFile, key_file: elsewhere.keyFile } },
      },
    });
    try {
      expectOneLineFailure(
        await runCli(["list", "--url", other.baseUrl, "--ca-file", ca.certFile]),
        /: its certificate is not for this host name \(ERR_TLS_CERT_ALTNAME_INVALID\)/,
      );
    } finally {
      expect(await other.stop()).toBe(0);
    }
    expectOneLineFailure(
      await runCli(["list", "--url", url.replace("https://", "http://")]),
      // The TLS port answers plaintext gRPC with UNAVAILABLE naming TLS (plaintext-refusal.ts).
      /^files: cannot reach the service at http:\/\/127\.0\.0\.1:\d+ \(This port requires TLS: connect with https:\/\/ [^\n]*\)\n$/,
    );
  });

  it("answers a bad --ca-file, --cert without --key, or TLS flags on an http:// URL as usage errors", async () => {
    const missing = join(dir, "no-such-ca.pem");
    const notPem = join(dir, "not-a-cert.pem");
    await writeFile(notPem, "hello\n");
    const cases: [string[], RegExp][] = [
      [["list", "--url", url, "--ca-file", missing], new RegExp(`^files: cannot read --ca-file ${missing}: no such file or directory\\nUsage: files list`)],
      [["list", "--url", url, "--ca-file", notPem], new RegExp(`^files: --ca-file ${notPem} holds no PEM certificate\\n`)],
      [["list", "--url", url, "--cert", alice.certFile], /^files: --cert needs --key \(its private key\)\n/],
      [["list", "--url", url, "--key", alice.keyFile], /^files: --key needs --cert/],
      [["list", "--url", url, "--cert", alice.certFile, "--key", bob.keyFile], /^files: --key \S+ is not the private key of --cert \S+\n/],
      [["list", "--url", url, "--cert", join(dir, "none.crt"), "--key", alice.keyFile], /^files: cannot read --cert \S+none\.crt: no such file or directory\n/],
      [["list", "--url", "http://127.0.0.1:1", "--ca-file", ca.certFile], /^files: --ca-file needs an https:\/\/ --url, not 'http:\/\/127\.0\.0\.1:1'\n/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args);
      expectExit(result, 2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout.length).toBe(0);
    }
    // A missing $FILES_CA_FILE is named too; for an http:// URL the TLS variables are ignored.
    const fromEnv = await runCli(["list", "--url", url], { FILES_CA_FILE: missing });
    expectExit(fromEnv, 2);
    expect(fromEnv.stderr).toContain(`cannot read --ca-file ${missing}`);
    const plain = await runCli(["list", "--url", "http://127.0.0.1:1"], { FILES_CA_FILE: missing });
    expectOneLineFailure(plain, /^files: cannot reach the service at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)\n$/);
  });

  it("lists the TLS options in --help", async () => {
    const help = await runCli(["--help"]);
    expectExit(help, 0);
    for (const flag of ["--ca-file FILE", "--cert FILE", "--key FILE"]) expect(help.stdout.toString()).toContain(flag);
    for (const env of ["$FILES_CA_FILE", "$FILES_CERT", "$FILES_KEY"]) expect(help.stdout.toString()).toContain(env);
  });
});

describe("files CLI with mutual TLS (client_auth: require, principal_from: subject_cn)", () => {
  let server: ServerProcess;
  let url: string;
  const as = (cert: TestCert) => ["--url", url, "--ca-file", ca.certFile, "--cert", cert.certFile, "--key", cert.keyFile];

  beforeAll(async () => {
    server = await startTlsServer("cli-mtls-server", { client_ca_file: ca.certFile, client_auth: "require", principal_from: "subject_cn" });
    url = server.baseUrl;
  });
  afterAll(async () => {
    if (server) expect(await server.stop()).toBe(0);
  });

  it("works with --cert and --key, and fails in one clear line without them", async () => {
    expectExit(await runCli(["list", ...as(alice)]), 0);
    // Node's TLS 1.3 client learns of the refusal either from the server's alert or as a reset.
    expectOneLineFailure(
      await runCli(["list", "--url", url, "--ca-file", ca.certFile]),
      /^files: cannot reach the service at https:\/\/127\.0\.0\.1:\d+: (it requires a client certificate \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\);|it closed the connection \(ECONNRESET\); if it requires a client certificate,) pass --cert and --key\n$/,
    );
  });

  it("says the client certificate was refused when it is issued by a CA the server does not trust", async () => {
    const foreign = issueCert(otherCa, { cn: "alice" });
    // The server hangs up without a TLS alert, so the reason is not on the wire; the CLI says what to check.
    expectOneLineFailure(
      await runCli(["list", ...as(foreign)]),
      /^files: .*(ECONNRESET|CANCEL|ALERT_\w+).*--cert/,
    );
  });

  it("keeps each certificate's files to itself: CN=alice's upload is not listed for CN=bob", async () => {
    const path = join(dir, "alice-only.txt");
    await writeFile(path, "for alice\n");
    const up = await runCli(["upload", path, "--json"], { FILES_URL: url, FILES_CA_FILE: ca.certFile, FILES_CERT: alice.certFile, FILES_KEY: alice.keyFile });
    expectExit(up, 0);
    const { id } = JSON.parse(up.stdout.toString()) as { id: string };

    const ids = async (cert: TestCert) => {
      const result = await runCli(["list", ...as(cert), "--json", "--all"]);
      expectExit(result, 0);
      return (JSON.parse(result.stdout.toString()) as { data: { id: string }[] }).data.map((f) => f.id);
    };
    expect(await ids(alice)).toContain(id);
    expect(await ids(bob)).not.toContain(id);
    expectOneLineFailure(await runCli(["get", id, ...as(bob)]), new RegExp(`^files: no such file: ${id}\\n$`));
    expectOneLineFailure(await runCli(["delete", id, ...as(bob)]), new RegExp(`^files: no such file: ${id}\\n$`));

    const down = await runCli(["download", id, ...as(alice), "-o", "-"]);
    expectExit(down, 0);
    expect(down.stdout.toString()).toBe("for alice\n");
    expectExit(await runCli(["delete", id, ...as(alice)]), 0);
    expect(await ids(alice)).not.toContain(id);
  });
});
