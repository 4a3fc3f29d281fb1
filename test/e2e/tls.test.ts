/**
 * TLS on the one port, against the real server: Node's own clients (connect-node over HTTP/2 and
 * HTTP/1.1, @grpc/grpc-js, the openai Node SDK, curl), the refusals a TLS port owes plaintext and
 * broken handshakes, mutual TLS with `require` and `optional`, and certificate rotation.
 * Certificates are made per run by test/support/test-certs.ts.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { tempDir } from "../support/env.js";
import { grpcJsClientWith } from "../support/grpc-clients.js";
import { REPO_ROOT, startServer, type ServerProcess } from "../support/server-process.js";
import { issueCert, issueServerCert, makeCa, type TestCa, type TestCert } from "../support/test-certs.js";
import { eventually, MiB, readAll, sha256 } from "../support/test-helpers.js";

const run = promisify(execFile);
const API_KEY = "sk-test-tls-key-0123456789abcdef";

let ca: TestCa;
let otherCa: TestCa;
let serverCert: TestCert;
let alice: TestCert;
let bob: TestCert;
let expired: TestCert;
let foreign: TestCert;

beforeAll(() => {
  ca = makeCa("Files Test CA");
  otherCa = makeCa("Some Other CA");
  serverCert = issueServerCert(ca);
  alice = issueCert(ca, { cn: "alice", uris: ["spiffe://files.test/alice"], dns: ["alice.svc.test"] });
  bob = issueCert(ca, { cn: "bob", uris: ["spiffe://files.test/bob"], dns: ["bob.svc.test"] });
  expired = issueCert(ca, { cn: "alice", uris: ["spiffe://files.test/alice"], notBefore: new Date("2020-01-01T00:00:00Z"), notAfter: new Date("2021-01-01T00:00:00Z") });
  foreign = issueCert(otherCa, { cn: "alice", uris: ["spiffe://files.test/alice"] });
});

async function startTlsServer(label: string, tlsConfig: Record<string, unknown>, server: Record<string, unknown> = {}): Promise<ServerProcess> {
  const dir = await tempDir(label);
  return startServer({
    https: true,
    config: {
      provider_type: "inline::localfs",
      config: { storage_dir: join(dir, "files"), metadata_store: { type: "sqlite", db_path: join(dir, "files.db") } },
      server: { tls: { cert_file: serverCert.certFile, key_file: serverCert.keyFile, ...tlsConfig }, ...server },
    },
  });
}

interface ClientTls {
  cert?: TestCert;
  token?: string;
}

function rpc(server: ServerProcess, protocol: "grpc" | "grpc-web" | "connect", { cert, token }: ClientTls = {}): Client<typeof FilesService> {
  const auth: Interceptor = (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const nodeOptions = { ca: ca.certPem, ...(cert && { cert: cert.certPem, key: cert.keyPem }) };
  const common = { baseUrl: server.baseUrl, interceptors: [auth], nodeOptions };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport(common)
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ ...common, httpVersion: "1.1" })
        : createConnectTransport({ ...common, httpVersion: "1.1" });
  return createClient(FilesService, transport);
}

async function uploadOver(client: Client<typeof FilesService>, name: string, data: Buffer) {
  async function* messages() {
    yield { payload: { case: "metadata" as const, value: { filename: name, purpose: FilePurpose.ASSISTANTS, mimeType: "application/octet-stream" } } };
    for (let at = 0; at < data.length; at += MiB) yield { payload: { case: "chunk" as const, value: data.subarray(at, at + MiB) } };
  }
  return (await client.uploadFile(messages())).file!;
}

async function downloadOver(client: Client<typeof FilesService>, fileId: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const msg of client.downloadFile({ fileId })) if (msg.payload.case === "chunk") chunks.push(Buffer.from(msg.payload.value));
  return Buffer.concat(chunks);
}

interface HttpsAnswer {
  status: number;
  body: string;
  alpn: string | false | null;
}

/** One HTTPS request over HTTP/1.1, on its own connection. */
function httpsRequest(server: ServerProcess, method: string, path: string, options: ClientTls & { body?: string; headers?: Record<string, string> } = {}): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const requestOptions: https.RequestOptions & tls.ConnectionOptions = {
        host: "127.0.0.1",
        port: server.port,
        method,
        path,
        ca: ca.certPem,
        ...(options.cert && { cert: options.cert.certPem, key: options.cert.keyPem }),
        headers: { ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }), ...options.headers },
        agent: false,
        ALPNProtocols: ["http/1.1"],
    };
    const req = https.request(requestOptions,
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
      },
    );
    req.on("error", reject);
    req.setTimeout(20_000, () => req.destroy(new Error("no answer within 20 s")));
    req.end(options.body);
  });
}

/** The outcome of a bare TLS handshake: the peer certificate's serial, or the error. */
function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<{ serial?: string; alpn?: string | false | null; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca: ca.certPem, servername: "localhost", ALPNProtocols: ["h2"], ...options }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      const alpn = socket.alpnProtocol;
      socket.end();
      resolve({ serial, alpn });
    });
    socket.on("error", (error) => resolve({ error }));
    socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
  });
}

async function metric(server: ServerProcess, name: string, cert?: TestCert): Promise<string[]> {
  const res = await httpsRequest(server, "GET", "/metrics", { cert });
  return res.body.split("\n").filter((line) => line.startsWith(name));
}

describe("one TLS port, no client certificates", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startTlsServer("tls-plain", {}, { limits: { header_timeout_seconds: 2 } });
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("announces TLS in its start-up line and logs the certificate it serves", () => {
    const lines = server.output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === "listening")).toMatchObject({ tls: { clientAuth: "none", minVersion: "TLSv1.2" } });
    expect(lines.find((l) => l.msg === "loaded the serving certificate")).toMatchObject({ serial: serverCert.serial, subject: "CN=localhost" });
  });

  it("serves gRPC over HTTP/2 (connect-node): upload, download, list, delete", async () => {
    const client = rpc(server, "grpc");
    const data = randomBytes(3 * MiB + 17);
    const file = await uploadOver(client, "over-grpc.bin", data);
    expect(sha256(await downloadOver(client, file.id))).toBe(sha256(data));
    expect((await client.listFiles({})).data.map((f) => f.id)).toContain(file.id);
    expect((await client.deleteFile({ fileId: file.id })).deleted).toBe(true);
  });

  it("serves gRPC-Web and Connect over HTTP/1.1 on the same port", async () => {
    for (const protocol of ["grpc-web", "connect"] as const) {
      const client = rpc(server, protocol);
      const file = await uploadOver(client, `${protocol}.txt`, Buffer.from(`hello over ${protocol}`));
      expect((await client.getFile({ fileId: file.id })).file?.filename).toBe(`${protocol}.txt`);
    }
  });

  it("serves @grpc/grpc-js with TLS channel credentials", async () => {
    const client = grpcJsClientWith(`127.0.0.1:${server.port}`, grpc.credentials.createSsl(Buffer.from(ca.certPem)));
    try {
      const data = randomBytes(2 * MiB + 5);
      const file = await client.upload({ filename: "grpc-js.bin", purpose: FilePurpose.BATCH }, [data.subarray(0, MiB), data.subarray(MiB)]);
      const got = await client.download({ fileId: file.id });
      expect(sha256(got.data)).toBe(sha256(data));
    } finally {
      client.close();
    }
  });

  it("negotiates h2 and http/1.1 by ALPN, and HTTP/1.1 for a client that offers none", async () => {
    expect((await handshake(server.port, { ALPNProtocols: ["h2", "http/1.1"] })).alpn).toBe("h2");
    expect((await handshake(server.port, { ALPNProtocols: ["http/1.1"] })).alpn).toBe("http/1.1");
    const answer = await new Promise<HttpsAnswer>((resolve, reject) => {
      https
        .get({ host: "127.0.0.1", port: server.port, path: "/healthz", ca: ca.certPem, agent: false }, (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
        })
        .on("error", reject);
    });
    expect(answer).toMatchObject({ status: 200, alpn: false });
  });

  it("serves the openai Node SDK over https:// with the CA in NODE_EXTRA_CA_CERTS", async () => {
    const script = `
      import OpenAI, { toFile } from "openai";
      const client = new OpenAI({ apiKey: "unused", baseURL: process.env.BASE_URL + "/v1", maxRetries: 0 });
      const created = await client.files.create({ file: await toFile(Buffer.from("hello over https"), "sdk.txt"), purpose: "assistants" });
      const text = await (await client.files.content(created.id)).text();
      const listed = [];
      for await (const f of client.files.list()) listed.push(f.id);
      const deleted = await client.files.delete(created.id);
      console.log(JSON.stringify({ id: created.id, text, listed: listed.includes(created.id), deleted: deleted.deleted }));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.certFile, BASE_URL: server.baseUrl },
      timeout: 60_000,
    });
    expect(JSON.parse(stdout)).toMatchObject({ text: "hello over https", listed: true, deleted: true });
  });

  it("serves curl over HTTP/1.1 and HTTP/2 with --cacert", async () => {
    for (const [flag, version] of [["--http1.1", "1.1"], ["--http2", "2"]] as const) {
      const { stdout } = await run("curl", ["-sS", flag, "--cacert", ca.certFile, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `${server.baseUrl}/v1/files`]);
      expect(stdout).toBe(`200 ${version}`);
    }
    // And the name in the certificate, not only the address.
    const { stdout } = await run("curl", ["-sS", "--cacert", ca.certFile, `https://localhost:${server.port}/healthz`]);
    expect(JSON.parse(stdout)).toEqual({ status: "ok" });
  });

  it("a client that does not trust the CA fails the handshake on the client side", async () => {
    const result = await handshake(server.port, { ca: otherCa.certPem });
    expect((result.error as NodeJS.ErrnoException | undefined)?.code).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/);
  });

  it("answers a plaintext HTTP/1.1 request with a 400 in OpenAI's error shape, then closes", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/files`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { message: expect.stringContaining("This port requires TLS"), type: "invalid_request_error", param: null, code: "tls_required" },
    });
  });

  it("answers HTTP/2 in clear: gRPC with UNAVAILABLE naming TLS, anything else with the 400", async () => {
    const plain = createClient(FilesService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
    const started = Date.now();
    const err = await plain.listFiles({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toContain("This port requires TLS");
    expect(Date.now() - started).toBeLessThan(5_000);

    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    const req = session.request({ ":method": "GET", ":path": "/v1/files" });
    const status = await new Promise<number>((resolve) => req.once("response", (h) => resolve(Number(h[":status"]))));
    const body = JSON.parse((await readAll(req)).toString("utf8")) as { error: { code: string } };
    expect(status).toBe(400);
    expect(body.error.code).toBe("tls_required");
    // And then the server goes away.
    await new Promise((resolve) => session.once("close", resolve));
  });

  it("closes a plaintext HTTP/2 connection that sends no request", async () => {
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      socket.on("data", () => {});
      socket.on("close", () => resolve());
      socket.on("error", () => {});
      socket.setTimeout(15_000, () => reject(new Error("the server kept a refused connection open for 15 s")));
    });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("closes a connection whose handshake never finishes within the header timeout", async () => {
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      // The first bytes of a ClientHello record, and then nothing.
      const socket = net.connect(server.port, "127.0.0.1", () => socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
      socket.on("close", () => resolve());
      socket.on("error", () => {});
      socket.setTimeout(15_000, () => {
        socket.destroy();
        reject(new Error("the server kept the stalled handshake open for 15 s"));
      });
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    await eventually(async () => expect((await metric(server, "files_tls_handshake_failures_total")).join("\n")).toContain("ERR_TLS_HANDSHAKE_TIMEOUT"));
  });

  it("refuses a client hello with no common application protocol", async () => {
    const result = await handshake(server.port, { ALPNProtocols: ["spdy/3", "h2c"] });
    expect(result.error?.message).toMatch(/no application protocol/i);
  });

  it("refuses a client that offers only TLS 1.1 or older", async () => {
    const result = await handshake(server.port, { maxVersion: "TLSv1.1", minVersion: "TLSv1" });
    expect(result.error).toBeDefined();
    expect(result.serial).toBeUndefined();
  });

  it("exports the serving certificate's expiry and counts refused connections", async () => {
    const expiry = await metric(server, "files_tls_certificate_expiry_seconds");
    const notAfter = Math.floor(new Date(new (await import("node:crypto")).X509Certificate(serverCert.certPem).validTo).getTime() / 1000);
    expect(expiry).toEqual([`files_tls_certificate_expiry_seconds ${notAfter}`]);
    const failures = (await metric(server, "files_tls_handshake_failures_total")).join("\n");
    expect(failures).toContain('code="ERR_FILES_TLS_REQUIRED"');
    expect(failures).toContain('code="ERR_SSL_NO_APPLICATION_PROTOCOL"');
  });
});

describe("TLS 1.3 only", () => {
  it("min_version 1.3 refuses a TLS 1.2 client and serves a TLS 1.3 one", async () => {
    const server = await startTlsServer("tls13", { min_version: "1.3" });
    try {
      expect((await handshake(server.port, { maxVersion: "TLSv1.2" })).error).toBeDefined();
      const ok = await handshake(server.port, { minVersion: "TLSv1.3" });
      expect(ok.serial).toBe(serverCert.serial);
    } finally {
      await server.stop();
    }
  });
});

describe("mutual TLS, client_auth: require", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startTlsServer("mtls-require", { client_ca_file: ca.certFile, client_auth: "require", principal_from: "subject_cn" });
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  const refusedAtHandshake = async (cert: TestCert | undefined) => {
    const grpcErr = await rpc(server, "grpc", { cert })
      .listFiles({})
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    // Refused before any request: by an alert (no certificate) or by a close as the handshake ends.
    expect(grpcErr, `gRPC with ${cert ? "that certificate" : "no certificate"}`).toBeInstanceOf(ConnectError);
    // connect-node reports the close as a reset or as its stream being cancelled.
    expect(grpcErr!.message).toMatch(/certificate required|ECONNRESET|socket hang up|stream closed with error code CANCEL/);
    const restErr = await httpsRequest(server, "GET", "/v1/files", { cert }).then(() => undefined, (e: unknown) => e as NodeJS.ErrnoException);
    expect(restErr?.code, `REST with ${cert ? "that certificate" : "no certificate"}`).toMatch(/^(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED|ECONNRESET)$/);
  };

  it("refuses a client without a certificate at the handshake, over gRPC and REST", async () => {
    await refusedAtHandshake(undefined);
  });

  it("refuses a certificate from another CA", async () => {
    await refusedAtHandshake(foreign);
  });

  it("refuses an expired certificate", async () => {
    await refusedAtHandshake(expired);
  });

  it("a good certificate is the principal: each sees only its own files, over gRPC and REST", async () => {
    const asAlice = rpc(server, "grpc", { cert: alice });
    const asBob = rpc(server, "grpc", { cert: bob });
    const file = await uploadOver(asAlice, "alice.txt", Buffer.from("alice's"));
    expect((await asAlice.listFiles({})).data.map((f) => f.id)).toContain(file.id);
    expect((await asBob.listFiles({})).data.map((f) => f.id)).not.toContain(file.id);
    const bobGets = await asBob.getFile({ fileId: file.id }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(bobGets?.code).toBe(Code.NotFound);

    const aliceRest = await httpsRequest(server, "GET", `/v1/files/${file.id}`, { cert: alice });
    expect(aliceRest.status).toBe(200);
    expect((await httpsRequest(server, "GET", `/v1/files/${file.id}`, { cert: bob })).status).toBe(404);
    const bobList = JSON.parse((await httpsRequest(server, "GET", "/v1/files", { cert: bob })).body) as { data: { id: string }[] };
    expect(bobList.data.map((f) => f.id)).not.toContain(file.id);
    // The request log names the certificate's principal.
    await eventually(async () => expect(server.output.some((l) => l.includes('"principal":"alice"'))).toBe(true));
  });

  it("counts the refused handshakes by the reason each certificate was refused", async () => {
    const failures = (await metric(server, "files_tls_handshake_failures_total", alice)).join("\n");
    expect(failures).toContain('code="CERT_HAS_EXPIRED"');
    expect(failures).toMatch(/code="UNABLE_TO_(GET_ISSUER_CERT|GET_ISSUER_CERT_LOCALLY|VERIFY_LEAF_SIGNATURE)"/);
    expect(failures).toMatch(/code="ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE"|code="ECONNRESET"/);
  });
});

describe("mutual TLS, client_auth: optional, beside API keys", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    server = await startTlsServer(
      "mtls-optional",
      { client_ca_file: ca.certFile, client_auth: "optional", principal_from: "san_uri" },
      { auth: { api_keys: [{ key: API_KEY, principal: "key-user" }] } },
    );
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  const whoAmI = async (creds: ClientTls) => {
    const client = rpc(server, "grpc", creds);
    try {
      const file = await uploadOver(client, "who.txt", Buffer.from("x"));
      const rest = await httpsRequest(server, "GET", "/v1/files", { ...creds });
      const listed = (JSON.parse(rest.body) as { data: { id: string }[] }).data.some((f) => f.id === file.id);
      return { ok: true, listedOverRest: listed };
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      return { ok: false, code: err.code };
    }
  };
  it("no certificate and no token: UNAUTHENTICATED over gRPC, 401 over REST", async () => {
    expect(await whoAmI({})).toEqual({ ok: false, code: Code.Unauthenticated });
    const rest = await httpsRequest(server, "GET", "/v1/files");
    expect(rest.status).toBe(401);
    expect(rest.body).toContain("client certificate");
  });

  it("no certificate, a token: the token's principal", async () => {
    expect(await whoAmI({ token: API_KEY })).toMatchObject({ ok: true, listedOverRest: true });
  });

  it("a good certificate: the principal its URI SAN names", async () => {
    const result = await whoAmI({ cert: alice });
    expect(result).toMatchObject({ ok: true, listedOverRest: true });
  });

  it("a certificate from another CA, or an expired one, is never a principal (the handshake still completes)", async () => {
    for (const cert of [foreign, expired]) {
      expect(await whoAmI({ cert })).toEqual({ ok: false, code: Code.Unauthenticated });
      expect((await httpsRequest(server, "GET", "/v1/files", { cert })).status).toBe(401);
    }
  });

  it("a good certificate and a token: the token wins (principal_precedence: token)", async () => {
    const client = rpc(server, "grpc", { cert: alice, token: API_KEY });
    const file = await uploadOver(client, "both.txt", Buffer.from("both"));
    // Visible to the key alone, not to alice's certificate alone.
    const asKey = JSON.parse((await httpsRequest(server, "GET", "/v1/files", { token: API_KEY })).body) as { data: { id: string }[] };
    expect(asKey.data.map((f) => f.id)).toContain(file.id);
    const asCert = JSON.parse((await httpsRequest(server, "GET", "/v1/files", { cert: alice })).body) as { data: { id: string }[] };
    expect(asCert.data.map((f) => f.id)).not.toContain(file.id);
    // A bad token beside a good certificate is refused, not silently replaced by the certificate.
    const bad = await rpc(server, "grpc", { cert: alice, token: "sk-test-not-a-key-000000000" }).listFiles({}).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(bad?.code).toBe(Code.Unauthenticated);
  });
});

describe("certificate rotation", () => {
  let server: ServerProcess;
  let dir: string;
  const certPath = () => join(dir, "server.crt");
  const keyPath = () => join(dir, "server.key");

  beforeAll(async () => {
    dir = await tempDir("tls-rotation");
    copyFileSync(serverCert.certFile, certPath());
    copyFileSync(serverCert.keyFile, keyPath());
    const data = await tempDir("tls-rotation-data");
    server = await startServer({
      https: true,
      config: {
        provider_type: "inline::localfs",
        config: { storage_dir: join(data, "files"), metadata_store: { type: "sqlite", db_path: join(data, "files.db") } },
        server: { tls: { cert_file: certPath(), key_file: keyPath(), reload_interval_seconds: 1 } },
      },
    });
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  const install = (cert: TestCert) => {
    writeFileSync(certPath(), cert.certPem);
    writeFileSync(keyPath(), cert.keyPem);
  };

  it("a download in flight completes while the files change; new connections get the new certificate", async () => {
    const data = randomBytes(48 * MiB);
    const file = await uploadOver(rpc(server, "grpc"), "long.bin", data);
    expect((await handshake(server.port)).serial).toBe(serverCert.serial);

    // A slow reader over its own HTTP/2 connection: it reads a little, then waits for the rotation.
    const session = http2.connect(server.baseUrl, { ca: ca.certPem });
    const req = session.request({ ":method": "GET", ":path": `/v1/files/${file.id}/content` });
    const first = await new Promise<Buffer>((resolve) => req.once("data", resolve));
    req.pause();

    const next = issueServerCert(ca);
    install(next);
    await eventually(async () => expect((await handshake(server.port)).serial).toBe(next.serial), 20_000);

    req.unshift(first);
    req.resume();
    const body = await readAll(req);
    session.close();
    expect(body.length).toBe(data.length);
    expect(sha256(body)).toBe(sha256(data));
    expect((await metric(server, "files_tls_reloads_total")).join("\n")).toContain('outcome="ok"');
    const expiry = (await metric(server, "files_tls_certificate_expiry_seconds"))[0];
    const notAfter = Math.floor(new Date(new (await import("node:crypto")).X509Certificate(next.certPem).validTo).getTime() / 1000);
    expect(expiry).toBe(`files_tls_certificate_expiry_seconds ${notAfter}`);
  }, 90_000);

  it("a corrupt replacement is logged and the old certificate keeps serving", async () => {
    const serving = (await handshake(server.port)).serial!;
    writeFileSync(certPath(), "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
    await eventually(async () => expect(server.output.some((l) => l.includes("could not reload the TLS certificate files"))).toBe(true), 20_000);
    expect((await handshake(server.port)).serial).toBe(serving);
    expect((await metric(server, "files_tls_reloads_total")).join("\n")).toContain('outcome="error"');
    // A key that belongs to another certificate is refused the same way.
    const other = issueServerCert(ca);
    writeFileSync(certPath(), other.certPem);
    await eventually(async () => expect(server.output.filter((l) => l.includes("is not the private key of the certificate")).length).toBeGreaterThan(0), 20_000);
    expect((await handshake(server.port)).serial).toBe(serving);
  }, 60_000);

  it("SIGHUP reloads at once", async () => {
    const next = issueServerCert(ca);
    install(next);
    server.child.kill("SIGHUP");
    await eventually(async () => expect((await handshake(server.port)).serial).toBe(next.serial), 5_000);
    expect(server.child.exitCode).toBeNull();
  });
});

describe("start-up with broken TLS files", () => {
  it.each([
    ["a missing cert_file", () => ({ cert_file: "/nonexistent/server.crt", key_file: serverCert.keyFile }), /cannot read server\.tls\.cert_file \/nonexistent\/server\.crt: ENOENT/],
    ["a key that is not the certificate's", () => ({ cert_file: serverCert.certFile, key_file: alice.keyFile }), /is not the private key of the certificate/],
    ["an encrypted key without key_passphrase", () => ({ cert_file: encrypted.certFile, key_file: encrypted.keyFile }), /encrypted and no key_passphrase is set/],
    ["a wrong key_passphrase", () => ({ cert_file: encrypted.certFile, key_file: encrypted.keyFile, key_passphrase: "wrong" }), /key_passphrase does not decrypt it/],
    ["client_auth without client_ca_file", () => ({ cert_file: serverCert.certFile, key_file: serverCert.keyFile, client_auth: "require" }), /client_ca_file/],
  ])("%s stops the server with a message naming the problem", async (_name, tlsConfig, message) => {
    const { runServerToExit } = await import("../support/server-process.js");
    const dir = await tempDir("tls-broken");
    const result = await runServerToExit({
      config: { provider_type: "inline::localfs", config: { storage_dir: join(dir, "f"), metadata_store: { type: "sqlite", db_path: join(dir, "db") } }, server: { tls: tlsConfig() } },
    });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(message);
  });

  let encrypted: TestCert;
  beforeAll(() => {
    encrypted = issueServerCert(ca, { passphrase: "s3cret-test-passphrase" });
  });

  it("an encrypted key with its passphrase from ${env...} serves", async () => {
    const dir = await tempDir("tls-passphrase");
    const server = await startServer({
      https: true,
      env: { TLS_KEY_PASSPHRASE: "s3cret-test-passphrase" },
      config: {
        provider_type: "inline::localfs",
        config: { storage_dir: join(dir, "f"), metadata_store: { type: "sqlite", db_path: join(dir, "db") } },
        server: { tls: { cert_file: encrypted.certFile, key_file: encrypted.keyFile, key_passphrase: "${env.TLS_KEY_PASSPHRASE}" } },
      },
    });
    try {
      expect((await handshake(server.port)).serial).toBe(encrypted.serial);
    } finally {
      await server.stop();
    }
  });
});
