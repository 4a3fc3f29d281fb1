import { randomBytes } from "node:crypto";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rejection, sha256 } from "../support/test-helpers.js";

// Obviously fake test keys.
const ALICE_KEY = "sk-test-alice-aaaaaaaaaaaaaaaa";
const BOB_KEY = "sk-test-bob-bbbbbbbbbbbbbbbbbbbb";
const ISSUER = "https://issuer.example.test";
const AUDIENCE = "files";

let server: ServerProcess;
let bucket: string;
let signingKey: CryptoKey;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  signingKey = pair.privateKey;
  bucket = await createTestBucket("auth");
  const dir = await tempDir("auth");
  const config = {
    ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }),
    server: {
      auth: {
        api_keys: [
          { key: "${env.ALICE_KEY}", principal: "alice" },
          { key: BOB_KEY, principal: "bob" },
        ],
        jwt: { public_key: await exportSPKI(pair.publicKey), issuer: ISSUER, audience: AUDIENCE },
      },
    },
  };
  server = await startServer({ config, env: { ALICE_KEY } });
});

afterAll(async () => {
  await server?.stop();
});

const jwtFor = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "ES256" }).setSubject(sub).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("5m").sign(signingKey);

const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });

function rpc(token: string | undefined, protocol: "grpc" | "connect" = "grpc"): Client<typeof FilesService> {
  const auth: Interceptor = (next) => (req) => {
    if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [auth] })
      : createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", interceptors: [auth] });
  return createClient(FilesService, transport);
}

async function uploadAs(key: string, name: string, bytes = randomBytes(4096)) {
  const file = await openai(key).files.create({ file: await toFile(bytes, name), purpose: "assistants" });
  return { file, bytes };
}

describe("without valid credentials", () => {
  it("REST answers 401 in OpenAI's shape, with WWW-Authenticate, and stores nothing", async () => {
    const before = await listAllKeys(bucket);
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{}, /Missing credentials/],
      [{ authorization: "Bearer sk-test-not-a-key-000000000" }, /Invalid API key or token/],
      [{ authorization: `Basic ${ALICE_KEY}` }, /must be 'Bearer/],
    ];
    for (const [headers, message] of cases) {
      for (const [method, path] of [["GET", "/v1/files"], ["GET", "/v1/files/file-abc"], ["POST", "/v1/uploads"]] as const) {
        const res = await fetch(`${server.baseUrl}${path}`, { method, headers: { ...headers, "content-type": "application/json" }, body: method === "POST" ? "{}" : undefined });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="files"');
        const body = (await res.json()) as { error: { message: string; type: string; code: string; param: unknown } };
        expect(body.error).toEqual({ message: expect.stringMatching(message), type: "invalid_request_error", param: null, code: "invalid_api_key" });
      }
    }
    const form = new FormData();
    form.set("purpose", "assistants");
    form.set("file", new Blob([randomBytes(1024)]), "x.bin");
    expect((await fetch(`${server.baseUrl}/v1/files`, { method: "POST", body: form })).status).toBe(401);
    expect(await listAllKeys(bucket)).toEqual(before);
  });

  it("the openai SDK raises AuthenticationError", async () => {
    await expect(openai("sk-test-wrong-key-0000000000").files.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("RPCs answer UNAUTHENTICATED over gRPC and Connect", async () => {
    for (const protocol of ["grpc", "connect"] as const) {
      for (const token of [undefined, "sk-test-not-a-key-000000000"]) {
        const err = await rpc(token, protocol).listFiles({ limit: 1 }).catch((e: unknown) => ConnectError.from(e));
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.Unauthenticated);
      }
    }
  });

  it("@grpc/grpc-js without metadata gets UNAUTHENTICATED too", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      client.makeUnaryRequest(
        "/files.v1.FilesService/GetFile",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (e) => resolve(e!),
      ),
    );
    client.close();
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("health, readiness, metrics and gRPC health need no token", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) {
      expect((await fetch(`${server.baseUrl}${path}`)).status, path).toBe(200);
    }
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const code = await new Promise<number>((resolve) =>
      client.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e ? e.code : 0)),
    );
    client.close();
    expect(code).toBe(grpc.status.OK);
  });
});

describe("each principal sees only its own files", () => {
  it("another principal's file is 404 on every REST route, and untouched", async () => {
    const { file, bytes } = await uploadAs(ALICE_KEY, "alice.bin");
    const bob = openai(BOB_KEY);
    await expect(bob.files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(bob.files.content(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(bob.files.delete(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const head = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`, { method: "HEAD", headers: { authorization: `Bearer ${BOB_KEY}` } });
    expect(head.status).toBe(404);
    // The same answer as for an id that does not exist, so ids cannot be probed.
    const probe = await fetch(`${server.baseUrl}/v1/files/${file.id}`, { headers: { authorization: `Bearer ${BOB_KEY}` } });
    const missing = await fetch(`${server.baseUrl}/v1/files/file-00000000000000000000000000`, { headers: { authorization: `Bearer ${BOB_KEY}` } });
    expect(probe.status).toBe(missing.status);
    expect(((await probe.json()) as { error: { message: string } }).error.message).toBe(
      ((await missing.json()) as { error: { message: string } }).error.message.replace("file-00000000000000000000000000", file.id),
    );
    for await (const f of bob.files.list()) expect(f.id).not.toBe(file.id);
    // An `after` cursor naming another principal's file is as unknown as a made-up one.
    const cursor = await fetch(`${server.baseUrl}/v1/files?after=${file.id}`, { headers: { authorization: `Bearer ${BOB_KEY}` } });
    expect(cursor.status).toBe(400);
    expect(((await cursor.json()) as { error: { param: string } }).error.param).toBe("after");

    const alice = openai(ALICE_KEY);
    expect((await alice.files.retrieve(file.id)).id).toBe(file.id);
    expect(sha256(Buffer.from(await (await alice.files.content(file.id)).arrayBuffer()))).toBe(sha256(bytes));
    const listed: string[] = [];
    for await (const f of alice.files.list()) listed.push(f.id);
    expect(listed).toContain(file.id);
  });

  it("another principal's file is NOT_FOUND on every RPC", async () => {
    const { file, bytes } = await uploadAs(ALICE_KEY, "alice-rpc.bin");
    const bob = rpc(BOB_KEY);
    for (const call of [
      () => bob.getFile({ fileId: file.id }),
      () => bob.deleteFile({ fileId: file.id }),
      async () => {
        for await (const _ of bob.downloadFile({ fileId: file.id })) void _;
      },
    ]) {
      expect((await rejection(call())).code).toBe(Code.NotFound);
    }
    const page = await bob.listFiles({ limit: 100 });
    expect(page.data.map((f) => f.id)).not.toContain(file.id);
    expect((await rejection(bob.listFiles({ limit: 10, after: file.id }))).code).toBe(Code.InvalidArgument);
    const alice = rpc(ALICE_KEY);
    const chunks: Uint8Array[] = [];
    for await (const msg of alice.downloadFile({ fileId: file.id })) if (msg.payload.case === "chunk") chunks.push(msg.payload.value);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(bytes));
  });

  it("files uploaded over gRPC and through a JWT belong to their principal", async () => {
    const carol = rpc(await jwtFor("carol"));
    async function* messages() {
      yield { payload: { case: "metadata" as const, value: { filename: "carol.bin", purpose: FilePurpose.ASSISTANTS } } };
      yield { payload: { case: "chunk" as const, value: randomBytes(1000) } };
    }
    const { file } = await carol.uploadFile(messages());
    expect((await carol.getFile({ fileId: file!.id })).file!.id).toBe(file!.id);
    await expect(openai(ALICE_KEY).files.retrieve(file!.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const viaRest = openai(await jwtFor("carol"));
    expect((await viaRest.files.retrieve(file!.id)).filename).toBe("carol.bin");
    // A different subject is a different principal.
    await expect(openai(await jwtFor("dave")).files.retrieve(file!.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("another principal's Upload is 404 for parts, complete, cancel and retrieve, over REST and RPC", async () => {
    const alice = openai(ALICE_KEY);
    const upload = await alice.uploads.create({ bytes: 10, filename: "a.txt", mime_type: "text/plain", purpose: "assistants" });
    const part = await alice.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("0123456789"), "p") });
    const bob = openai(BOB_KEY);
    await expect(bob.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("x"), "p") })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(bob.uploads.complete(upload.id, { part_ids: [part.id] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(bob.uploads.cancel(upload.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const get = await fetch(`${server.baseUrl}/v1/uploads/${upload.id}`, { headers: { authorization: `Bearer ${BOB_KEY}` } });
    expect(get.status).toBe(404);
    const bobRpc = rpc(BOB_KEY);
    expect((await rejection(bobRpc.getUpload({ uploadId: upload.id }))).code).toBe(Code.NotFound);
    expect((await rejection(bobRpc.addUploadPart({ uploadId: upload.id, data: new Uint8Array(1) }))).code).toBe(Code.NotFound);
    expect((await rejection(bobRpc.completeUpload({ uploadId: upload.id, partIds: [part.id] }))).code).toBe(Code.NotFound);
    expect((await rejection(bobRpc.cancelUpload({ uploadId: upload.id }))).code).toBe(Code.NotFound);

    const done = await alice.uploads.complete(upload.id, { part_ids: [part.id] });
    expect(done.status).toBe("completed");
    const fileId = done.file!.id;
    expect(Buffer.from(await (await alice.files.content(fileId)).arrayBuffer()).toString()).toBe("0123456789");
    await expect(bob.files.retrieve(fileId)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("log lines name the principal", async () => {
    await openai(BOB_KEY).files.list();
    await rpc(BOB_KEY).listFiles({ limit: 1 });
    const entries = server.output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { principal?: string; route?: string; rpc?: string });
    expect(entries.some((e) => e.route === "/v1/files" && e.principal === "bob")).toBe(true);
    expect(entries.some((e) => e.rpc === "files.v1.FilesService/ListFiles" && e.principal === "bob")).toBe(true);
    // Keys never reach the log.
    expect(server.output.join("\n")).not.toContain(BOB_KEY);
    expect(server.output.join("\n")).not.toContain(ALICE_KEY);
  });
});

describe("without an auth block", () => {
  it("the server warns loudly at start", async () => {
    const dir = await tempDir("auth-off");
    const open = await startServer({ config: { config: { storage_dir: `${dir}/files`, metadata_store: { type: "sqlite", db_path: `${dir}/files.db` } } } });
    try {
      const warning = open.output.find((l) => l.includes("authentication is off"));
      expect(warning).toBeDefined();
      expect(JSON.parse(warning!).level).toBe(40);
    } finally {
      await open.stop();
    }
  });
});
