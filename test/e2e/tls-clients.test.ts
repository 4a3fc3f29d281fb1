/**
 * Foreign clients against one TLS server (ALPN h2 and http/1.1, client certificates optional,
 * principal from the subject CN, API keys beside them): grpc-go (test/clients/go), grpcio
 * (test/clients/python), grpcurl and the Python openai SDK, each a real process trusting the test
 * CA. Each row has its own principal (an API key or a certificate CN), so the clients' "the upload
 * is my only file" checks hold whatever ran before. Certificates are made per run by
 * test/support/test-certs.ts; the tools are built or installed once into the test cache.
 */
import https from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CODEGEN_VERSIONS, ensurePythonGrpc } from "../support/codegen-tools.js";
import { tempDir } from "../support/env.js";
import { ensureGrpcurl } from "../support/grpcurl.js";
import { describeFailure, runCommand } from "../support/moto.js";
import { ensureOpenAiPython, OPENAI_PYTHON_VERSION } from "../support/python-venv.js";
import { REPO_ROOT, startServer, type ServerProcess } from "../support/server-process.js";
import { issueCert, issueServerCert, makeCa, type TestCa, type TestCert } from "../support/test-certs.js";
import { MiB } from "../support/test-helpers.js";

type RunResult = Awaited<ReturnType<typeof runCommand>>;

const GO_DIR = join(REPO_ROOT, "test/clients/go");
const PY_SCRIPT = join(REPO_ROOT, "test/clients/python/files_client.py");
const SIZE = 4 * MiB;

// Obviously fake keys, one principal per row.
const KEYS = {
  go: { key: "sk-fake-tls-clients-go-0000000000", principal: "go-key" },
  python: { key: "sk-fake-tls-clients-python-000000", principal: "python-key" },
  grpcurl: { key: "sk-fake-tls-clients-grpcurl-00000", principal: "grpcurl-key" },
  openai: { key: "sk-fake-tls-clients-openai-000000", principal: "openai-key" },
};

// The local toolchain only; go.sum is committed, so the default -mod=readonly holds.
const goEnv: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: "local", GOWORK: "off" };
const pyEnv: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };
delete pyEnv.PYTHONHOME;
delete pyEnv.PYTHONPATH;
delete pyEnv.SSL_CERT_FILE; // "without the CA" must mean the default roots
delete pyEnv.SSL_CERT_DIR;
delete pyEnv.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
delete pyEnv.OPENAI_BASE_URL;
delete pyEnv.OPENAI_API_KEY;

let ca: TestCa;
let goCert: TestCert;
let pyCert: TestCert;
let server: ServerProcess;
let goBinary: string;
let grpcPython: string;
let openaiPython: string;
let grpcurlBinary: string;

const addr = () => `127.0.0.1:${server.port}`;
const httpsUrl = () => `https://${addr()}`;

/** Everything worth seeing when a client run is not what the test wanted. */
function report(r: RunResult, ms?: number): string {
  return [
    `exit: ${r.code ?? `signal ${r.signal}`}${ms === undefined ? "" : ` after ${ms} ms`}`,
    `--- stdout ---\n${r.stdout}`,
    `--- stderr ---\n${r.stderr}`,
    `--- server output (last 40 lines) ---\n${server.output.slice(-40).join("\n")}`,
  ].join("\n");
}

async function timed(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ r: RunResult; ms: number }> {
  const started = Date.now();
  const r = await runCommand(command, args, { env, timeoutMs });
  return { r, ms: Date.now() - started };
}

/** A run that must succeed; resolves with its last stdout line as JSON. */
async function succeeds(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<Record<string, unknown>> {
  const { r, ms } = await timed(command, args, env, timeoutMs);
  expect(r.code, report(r, ms)).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
}

/** A run that must fail promptly (no hang) with a certificate verification error. */
async function failsVerification(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const { r, ms } = await timed(command, args, env, 45_000);
  const output = report(r, ms);
  expect(r.signal, `killed, so it hung: ${output}`).toBeNull();
  expect(r.code, output).not.toBe(0);
  expect(ms, output).toBeLessThan(30_000);
  expect(`${r.stdout}\n${r.stderr}`, output).toMatch(/certificate/i);
  expect(`${r.stdout}\n${r.stderr}`, output).toMatch(/verify|unknown authority|signed by unknown/i);
  return r;
}

/** GET on the REST API over TLS trusting the test CA, as an API key or a client certificate. */
function restGet(path: string, as: { token?: string; cert?: TestCert }): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port: server.port,
        path,
        method: "GET",
        ca: ca.certPem,
        ...(as.cert && { cert: as.cert.certPem, key: as.cert.keyPem }),
        headers: as.token ? { authorization: `Bearer ${as.token}` } : {},
        agent: false,
        timeout: 15_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: text });
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

const listedIds = (body: unknown) => ((body as { data?: { id: string }[] }).data ?? []).map((f) => f.id);

beforeAll(async () => {
  ca = makeCa("Files TLS Clients CA");
  const serverCert = issueServerCert(ca);
  goCert = issueCert(ca, { cn: "go-svc" });
  pyCert = issueCert(ca, { cn: "py-svc" });
  const dir = await tempDir("tls-clients");
  goBinary = join(dir, "files-go-client");

  // The tools first (each cached after its first run), so a missing one fails with its own message.
  const buildGo = async () => {
    const build = await runCommand("go", ["build", "-o", goBinary, "."], { cwd: GO_DIR, env: goEnv, timeoutMs: 600_000 }).catch((err: unknown) => {
      throw new Error(`the Go client needs Go on PATH: ${(err as Error).message}`);
    });
    if (build.code !== 0) throw new Error(`building test/clients/go failed: ${describeFailure(build)}`);
  };
  [, grpcPython, openaiPython, grpcurlBinary] = await Promise.all([buildGo(), ensurePythonGrpc(), ensureOpenAiPython(), ensureGrpcurl()]);

  server = await startServer({
    config: {
      provider_type: "inline::localfs",
      config: { storage_dir: join(dir, "files"), metadata_store: { type: "sqlite", db_path: join(dir, "files.db") } },
      server: {
        tls: {
          cert_file: serverCert.certFile,
          key_file: serverCert.keyFile,
          client_ca_file: ca.certFile,
          client_auth: "optional",
          principal_from: "subject_cn",
        },
        auth: { api_keys: Object.values(KEYS) },
      },
    },
  });
}, 660_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("grpc-go over TLS", () => {
  it("with the test CA and an API key: upload, ranged and full downloads, get, list, delete", async () => {
    const summary = await succeeds(goBinary, ["-addr", addr(), "-ca", ca.certFile, "-token", KEYS.go.key, "-size", String(SIZE)], goEnv);
    expect(summary).toMatchObject({ ok: true, bytes: SIZE });
  });

  it("with a client certificate (CN=go-svc) and no token: the whole scenario, and its file is go-svc's alone", async () => {
    const mtls = ["-ca", ca.certFile, "-cert", goCert.certFile, "-key", goCert.keyFile];
    expect(await succeeds(goBinary, ["-addr", addr(), ...mtls, "-size", String(SIZE)], goEnv)).toMatchObject({ ok: true, bytes: SIZE });

    // Checked against the name the certificate carries rather than the address dialled.
    const kept = await succeeds(goBinary, ["-addr", addr(), ...mtls, "-server-name", "localhost", "-size", String(64 * 1024), "-upload-only"], goEnv);
    expect(kept).toMatchObject({ ok: true, kept: true });
    const id = kept.file_id as string;
    expect(id).toMatch(/^file-/);

    const asCert = await restGet("/v1/files?limit=100", { cert: goCert });
    expect(asCert.status, JSON.stringify(asCert.body)).toBe(200);
    expect(listedIds(asCert.body)).toEqual([id]);

    const asKey = await restGet("/v1/files?limit=100", { token: KEYS.go.key });
    expect(asKey.status, JSON.stringify(asKey.body)).toBe(200);
    expect(listedIds(asKey.body)).not.toContain(id);
    expect((await restGet(`/v1/files/${id}`, { token: KEYS.go.key })).status).toBe(404);
    // Another certificate principal does not see it either.
    expect(listedIds((await restGet("/v1/files?limit=100", { cert: pyCert })).body)).not.toContain(id);
  });

  it("without the CA (system roots) or checking a name the certificate lacks: a prompt certificate error", async () => {
    const r = await failsVerification(goBinary, ["-addr", addr(), "-tls", "-token", KEYS.go.key, "-size", String(SIZE)], goEnv);
    expect(r.stderr).toMatch(/x509: certificate signed by unknown authority/);
    const wrongName = await failsVerification(goBinary, ["-addr", addr(), "-ca", ca.certFile, "-server-name", "files.example.invalid", "-token", KEYS.go.key], goEnv);
    expect(wrongName.stderr).toMatch(/not files\.example\.invalid/);
  });
});

describe("grpcio (Python) over TLS", () => {
  it(`grpcio ${CODEGEN_VERSIONS.grpcio} with the test CA and an API key: the whole scenario`, async () => {
    const summary = await succeeds(grpcPython, [PY_SCRIPT, "--ca", ca.certFile, "--token", KEYS.python.key, "--size", String(SIZE), addr()], pyEnv);
    expect(summary).toMatchObject({ ok: true, bytes: SIZE, grpcio: CODEGEN_VERSIONS.grpcio });
  });

  it("with a client certificate (CN=py-svc) and no token: the whole scenario", async () => {
    const summary = await succeeds(grpcPython, [PY_SCRIPT, "--ca", ca.certFile, "--cert", pyCert.certFile, "--key", pyCert.keyFile, "--size", String(SIZE), addr()], pyEnv);
    expect(summary).toMatchObject({ ok: true, bytes: SIZE });
  });

  it("without the CA (default roots): a prompt certificate verification error", async () => {
    const r = await failsVerification(grpcPython, [PY_SCRIPT, "--tls", "--token", KEYS.python.key, "--size", String(SIZE), addr()], pyEnv);
    expect(r.stderr).toMatch(/FAIL: StatusCode\.UNAVAILABLE: .*CERTIFICATE_VERIFY_FAILED/);
  });
});

describe("grpcurl over TLS", () => {
  const auth = () => ["-H", `authorization: Bearer ${KEYS.grpcurl.key}`];
  const grpcurl = (args: string[]) => timed(grpcurlBinary, ["-max-time", "20", "-connect-timeout", "10", ...args], process.env, 60_000);

  it("with -cacert: lists the services by reflection, uploads and lists files", async () => {
    const list = await grpcurl(["-cacert", ca.certFile, ...auth(), addr(), "list"]);
    expect(list.r.code, report(list.r, list.ms)).toBe(0);
    expect(list.r.stdout.split("\n").map((l) => l.trim())).toEqual(
      expect.arrayContaining(["files.v1.FilesService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]),
    );

    // Client streaming from JSON: the metadata message, then one chunk ("hello over tls\n").
    const messages = [
      { metadata: { filename: "grpcurl.txt", purpose: "FILE_PURPOSE_USER_DATA", mime_type: "text/plain" } },
      { chunk: Buffer.from("hello over tls\n").toString("base64") },
    ];
    const upload = await grpcurl(["-cacert", ca.certFile, ...auth(), "-d", messages.map((m) => JSON.stringify(m)).join("\n"), addr(), "files.v1.FilesService/UploadFile"]);
    expect(upload.r.code, report(upload.r, upload.ms)).toBe(0);
    const file = (JSON.parse(upload.r.stdout) as { file: { id: string; bytes: string } }).file;
    expect(file.bytes).toBe("15");

    const listed = await grpcurl(["-cacert", ca.certFile, ...auth(), "-d", JSON.stringify({ limit: 100 }), addr(), "files.v1.FilesService/ListFiles"]);
    expect(listed.r.code, report(listed.r, listed.ms)).toBe(0);
    expect((JSON.parse(listed.r.stdout) as { data: { id: string; filename: string }[] }).data).toEqual([
      expect.objectContaining({ id: file.id, filename: "grpcurl.txt", bytes: "15" }),
    ]);
  });

  it("without -cacert: a certificate error", async () => {
    const { r, ms } = await grpcurl([...auth(), addr(), "list"]);
    expect(r.signal, report(r, ms)).toBeNull();
    expect(r.code, report(r, ms)).not.toBe(0);
    expect(r.stderr, report(r, ms)).toMatch(/x509: certificate signed by unknown authority/);
  });

  it("with -plaintext against the TLS port: fails at once, saying the port requires TLS", async () => {
    const { r, ms } = await grpcurl(["-plaintext", ...auth(), addr(), "list"]);
    expect(r.signal, report(r, ms)).toBeNull();
    expect(r.code, report(r, ms)).not.toBe(0);
    expect(ms, report(r, ms)).toBeLessThan(10_000);
    expect(r.stderr, report(r, ms)).toContain("This port requires TLS");
  });
});

describe("plaintext gRPC against the TLS port", () => {
  it("grpc-go fails at once with UNAVAILABLE saying the port requires TLS", async () => {
    const { r, ms } = await timed(goBinary, ["-addr", addr(), "-token", KEYS.go.key, "-size", String(SIZE)], goEnv, 45_000);
    expect(r.code, report(r, ms)).not.toBe(0);
    expect(ms, report(r, ms)).toBeLessThan(10_000);
    expect(`${r.stdout}\n${r.stderr}`, report(r, ms)).toMatch(/Unavailable.*This port requires TLS/);
  });

  it("grpcio fails at once with UNAVAILABLE saying the port requires TLS (no retrying until the deadline)", async () => {
    const { r, ms } = await timed(grpcPython, [PY_SCRIPT, "--size", String(SIZE), addr()], pyEnv, 45_000);
    expect(r.code, report(r, ms)).not.toBe(0);
    expect(ms, report(r, ms)).toBeLessThan(10_000);
    expect(`${r.stdout}\n${r.stderr}`, report(r, ms)).toMatch(/UNAVAILABLE.*This port requires TLS/);
  });
});

// create, retrieve, content, list, delete, then NotFound; and the same client without the CA fails to connect.
const OPENAI_SCRIPT = String.raw`
import json, ssl, sys
import openai
from openai import OpenAI

base_url, api_key, ca_file = sys.argv[1:4]
def check(ok, message):
    if not ok:
        print("FAIL: " + message, file=sys.stderr)
        sys.exit(1)

client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30,
                http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=ca_file)))
data = b"hello from the openai sdk over tls\n"
created = client.files.create(file=("tls.txt", data, "text/plain"), purpose="assistants")
check(created.id.startswith("file-") and created.bytes == len(data) and created.filename == "tls.txt", f"create: {created}")
got = client.files.retrieve(created.id)
check(got.id == created.id and got.bytes == len(data) and got.purpose == "assistants", f"retrieve: {got}")
content = client.files.content(created.id).read()
check(content == data, f"content: {content!r}")
ids = [f.id for f in client.files.list()]
check(ids == [created.id], f"list: {ids}")
deleted = client.files.delete(created.id)
check(deleted.id == created.id and deleted.deleted, f"delete: {deleted}")
try:
    client.files.retrieve(created.id)
    check(False, "retrieve after delete succeeded")
except openai.NotFoundError:
    pass

# The default trust store (certifi) does not know the test CA.
untrusting = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
try:
    untrusting.files.list()
    check(False, "listing without the CA succeeded")
except openai.APIConnectionError as err:
    causes, e = [], err
    while e is not None:
        causes.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    check("CERTIFICATE_VERIFY_FAILED" in " | ".join(causes), f"without the CA: {causes}")

print(json.dumps({"ok": True, "openai_version": openai.__version__, "file_id": created.id}))
`;

describe("the Python openai SDK over https://", () => {
  it(`openai ${OPENAI_PYTHON_VERSION} with the test CA: create, retrieve, content, list, delete; without it a verification error`, async () => {
    const summary = await succeeds(openaiPython, ["-c", OPENAI_SCRIPT, `${httpsUrl()}/v1`, KEYS.openai.key, ca.certFile], pyEnv);
    expect(summary).toMatchObject({ ok: true, openai_version: OPENAI_PYTHON_VERSION });
  });
});
