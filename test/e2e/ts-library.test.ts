/**
 * The TypeScript client library (clients/ts, @s3-files-service/client) against the real server on
 * moto: round trips at the chunk and part boundaries from bytes, streams and paths, resumed
 * downloads through a proxy that cuts the connection, retried and failed parts, paged listing,
 * typed errors, TLS.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationError, FilesError, IntegrityError, NotFoundError, TooLargeError, UnavailableError } from "../../clients/ts/src/index.js";
import { connect, type NodeFilesClient } from "../../clients/ts/src/node.js";
import { UploadStatus } from "../../gen/ts/files/v1/files_pb.js";
import { startCuttingProxy, type CuttingProxy } from "../support/cutting-proxy.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { issueServerCert, makeCa } from "../support/test-certs.js";

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const API_KEY = `test-key-${randomBytes(12).toString("hex")}`;
const SMALL_LIMIT = 2 * MiB;

let dir: string;
let server: ServerProcess;
let authServer: ServerProcess;
let smallServer: ServerProcess;
let client: NodeFilesClient;
/** Parts of 5 MiB above 6 MiB, so a 16 MiB file takes four parts (the service composes parts of at least 5 MiB). */
const PARTS = { partThreshold: 6 * MiB, partSize: 5 * MiB, partConcurrency: 3, retry: { baseDelayMs: 20, maxDelayMs: 100 } };

async function config(name: string, server: object = {}) {
  const bucket = await createTestBucket(`ts-lib-${name}`);
  return { ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, `${name}.db`) }), server };
}

beforeAll(async () => {
  dir = await tempDir("ts-library");
  [server, authServer, smallServer] = await Promise.all([
    config("plain").then((c) => startServer({ config: c })),
    config("auth", { auth: { api_keys: [{ key: API_KEY, principal: "alice" }] } }).then((c) => startServer({ config: c })),
    config("small", { limits: { max_file_bytes: SMALL_LIMIT, max_upload_bytes: 8 * MiB } }).then((c) => startServer({ config: c })),
  ]);
  client = connect({ url: server.baseUrl, ...PARTS });
}, 120_000);

afterAll(async () => {
  client?.close();
  await Promise.all([server?.stop(), authServer?.stop(), smallServer?.stop()]);
});

async function downloadBytes(c: NodeFilesClient, id: string, options = {}) {
  const chunks: Uint8Array[] = [];
  const file = await c.download(id, (chunk) => void chunks.push(Buffer.from(chunk)), options);
  return { file, bytes: Buffer.concat(chunks) };
}

describe("round trips", () => {
  for (const [label, size] of [
    ["0 B", 0],
    ["1 B", 1],
    ["one chunk (1 MiB)", MiB],
    ["one chunk and a byte", MiB + 1],
    ["just under the parts threshold (one stream)", 6 * MiB - 1],
    ["at the threshold (parts: 5 MiB + 1 MiB)", 6 * MiB],
    ["four parts, the last short", 16 * MiB + 3],
  ] as const) {
    it(`bytes, ${label}: stored with the SHA-256 sent, and downloaded verified`, async () => {
      const data = randomBytes(size);
      const progress: number[] = [];
      const file = await client.upload(data, { purpose: "user_data", filename: `rt-${size}.bin`, onProgress: (p) => progress.push(p.bytes) });
      expect(Number(file.bytes)).toBe(size);
      expect(file.sha256).toBe(sha(data));
      if (size > 0) expect(progress.at(-1)).toBe(size);
      const got = await downloadBytes(client, file.id);
      expect(got.bytes.length).toBe(size);
      expect(sha(got.bytes)).toBe(sha(data));
      await client.delete(file.id);
    }, 60_000);
  }

  it("the library's defaults (6 MiB parts, 4 in flight on one HTTP/2 connection) over 64 MiB: the server takes every part", async () => {
    // Four parts in flight hold more than Node's default 10 MB of session memory on the server,
    // which then refused new streams with ENHANCE_YOUR_CALM.
    const c = connect({ url: server.baseUrl });
    try {
      const data = randomBytes(100 * MiB);
      const file = await c.upload(data, { purpose: "user_data", filename: "defaults.bin" });
      expect(file.sha256).toBe(sha(data));
      await c.delete(file.id);
    } finally {
      c.close();
    }
  }, 120_000);

  it("a stream of unknown size goes in one UploadFile stream, however large", async () => {
    const data = randomBytes(9 * MiB + 17);
    const stream = Readable.from((function* () {
      for (let at = 0; at < data.length; at += 100_000) yield data.subarray(at, at + 100_000);
    })());
    const file = await client.upload(stream, { purpose: "batch", filename: "stream.jsonl", mimeType: "application/jsonl" });
    expect(file.sha256).toBe(sha(data));
    expect(file.mimeType).toBe("application/jsonl");
    expect(sha((await downloadBytes(client, file.id)).bytes)).toBe(sha(data));
  });

  it("a path: uploadFile streams it (in parts above the threshold), downloadFile writes it whole or not at all", async () => {
    const data = randomBytes(11 * MiB);
    const path = join(dir, "source.bin");
    await writeFile(path, data);
    const file = await client.uploadFile(path, { purpose: "assistants", expiresAfterSeconds: 7200 });
    expect(file.filename).toBe("source.bin");
    expect(file.expiresAt).toBeDefined();
    const out = join(dir, "copy.bin");
    await client.downloadFile(file.id, out);
    expect(sha(await readFile(out))).toBe(sha(data));
    await expect(client.downloadFile("file-00000000000000000000000000000000", join(dir, "missing.bin"))).rejects.toBeInstanceOf(NotFoundError);
    expect((await readdir(dir)).filter((n) => n.includes("missing"))).toEqual([]);
  });

  it("a range: offset and length, not verified against the whole file's hash", async () => {
    const data = randomBytes(3 * MiB);
    const file = await client.upload(data, { purpose: "user_data", filename: "range.bin" });
    const got = await downloadBytes(client, file.id, { offset: MiB - 5, length: MiB + 10 });
    expect(Buffer.compare(got.bytes, data.subarray(MiB - 5, 2 * MiB + 5))).toBe(0);
    const tail = await downloadBytes(client, file.id, { offset: 3 * MiB - 7 });
    expect(Buffer.compare(tail.bytes, data.subarray(3 * MiB - 7))).toBe(0);
  });
});

describe("broken connections and failing parts", () => {
  let proxy: CuttingProxy;
  beforeAll(async () => {
    proxy = await startCuttingProxy(server.port);
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it("a download cut mid-way resumes from the bytes already written and verifies", async () => {
    const data = randomBytes(12 * MiB);
    const file = await client.upload(data, { purpose: "user_data", filename: "cut.bin" });
    const viaProxy = connect({ url: `http://127.0.0.1:${proxy.port}`, retry: { baseDelayMs: 20 } });
    try {
      proxy.arm(5 * MiB);
      const cutsBefore = proxy.cuts;
      const got = await downloadBytes(viaProxy, file.id);
      expect(proxy.cuts).toBe(cutsBefore + 1);
      expect(got.bytes.length).toBe(data.length);
      expect(sha(got.bytes)).toBe(sha(data));
    } finally {
      viaProxy.close();
    }
  }, 60_000);

  it("an AddUploadPart failing with UNAVAILABLE is retried, and the upload completes", async () => {
    let failed = 0;
    const flaky: Interceptor = (next) => async (req) => {
      if (req.method.name === "AddUploadPart" && failed < 2) {
        failed++;
        throw new ConnectError("injected: object storage is unavailable", Code.Unavailable);
      }
      return next(req);
    };
    const c = connect({ url: server.baseUrl, ...PARTS, interceptors: [flaky] });
    try {
      const data = randomBytes(13 * MiB);
      const file = await c.upload(data, { purpose: "user_data", filename: "retried.bin" });
      expect(failed).toBe(2);
      expect(file.sha256).toBe(sha(data));
    } finally {
      c.close();
    }
  });

  it("a part that keeps failing cancels the Upload, raises the error, and leaves no file", async () => {
    const uploads: string[] = [];
    const broken: Interceptor = (next) => async (req) => {
      if (req.method.name === "AddUploadPart") throw new ConnectError("injected: object storage is unavailable", Code.Unavailable);
      const res = await next(req);
      if (req.method.name === "CreateUpload" && !res.stream) uploads.push((res.message as { upload?: { id: string } }).upload!.id);
      return res;
    };
    const c = connect({ url: server.baseUrl, ...PARTS, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 }, interceptors: [broken] });
    const name = `doomed-${randomBytes(4).toString("hex")}.bin`;
    try {
      const err = await c.upload(randomBytes(7 * MiB), { purpose: "user_data", filename: name }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as FilesError).code).toBe(Code.Unavailable);
      expect(uploads).toHaveLength(1);
      const { upload } = await client.rpc.getUpload({ uploadId: uploads[0]! });
      expect(upload?.status).toBe(UploadStatus.CANCELLED);
      const names: string[] = [];
      for await (const f of client.list()) names.push(f.filename);
      expect(names).not.toContain(name);
    } finally {
      c.close();
    }
  });
});

describe("listing", () => {
  it("iterates 250 files across pages of 100, each exactly once, in order", async () => {
    const c = connect({ url: authServer.baseUrl, token: API_KEY });
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 250; i += 25) {
        const batch = await Promise.all(Array.from({ length: 25 }, (_, j) => c.upload(Buffer.from(`file ${i + j}`), { purpose: "batch", filename: `l-${i + j}.txt` })));
        for (const f of batch) ids.add(f.id);
      }
      const seen: string[] = [];
      let pages = 0;
      const counting: Interceptor = (next) => (req) => {
        if (req.method.name === "ListFiles") pages++;
        return next(req);
      };
      const lister = connect({ url: authServer.baseUrl, token: API_KEY, interceptors: [counting] });
      try {
        for await (const f of lister.list({ pageSize: 100, order: "asc", purpose: "batch" })) seen.push(f.id);
      } finally {
        lister.close();
      }
      expect(pages).toBe(3);
      expect(seen).toHaveLength(250);
      expect(new Set(seen)).toEqual(ids);
      // Downloads take their own road (straight on node:http2): the token goes with them too.
      const [first] = seen;
      expect((await downloadBytes(c, first!)).bytes.toString()).toMatch(/^file \d+$/);
      const anonymous = connect({ url: authServer.baseUrl });
      try {
        const refused = await downloadBytes(anonymous, first!).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(AuthenticationError);
        expect((refused as FilesError).requestId).toMatch(/\S{8,}/);
      } finally {
        anonymous.close();
      }
      const created = await Promise.all(seen.slice(0, 5).map((id) => c.get(id)));
      expect(created.map((f) => Number(f.createdAt))).toEqual([...created.map((f) => Number(f.createdAt))].sort((a, b) => a - b));
    } finally {
      c.close();
    }
  }, 120_000);
});

describe("typed errors", () => {
  it("not found: NotFoundError with the code, the service's message and a request id", async () => {
    const err = await client.get("file-0123456789abcdef0123456789abcdef").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).toBeInstanceOf(FilesError);
    const e = err as FilesError;
    expect(e.code).toBe(Code.NotFound);
    expect(e.codeName).toBe("NotFound");
    expect(e.message).toMatch(/file-0123456789abcdef0123456789abcdef/);
    expect(e.requestId).toMatch(/\S{8,}/);
  });

  it("unauthenticated: a missing or wrong token is AuthenticationError; the right one works", async () => {
    for (const token of [undefined, "wrong-key-wrong-key-wrong"]) {
      const c = connect({ url: authServer.baseUrl, token });
      try {
        const err = await c.list().next().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(AuthenticationError);
        expect((err as FilesError).code).toBe(Code.Unauthenticated);
      } finally {
        c.close();
      }
    }
  });

  it("too large: over max_file_bytes by stream, or over max_upload_bytes in parts, is TooLargeError", async () => {
    const c = connect({ url: smallServer.baseUrl, partThreshold: 8 * MiB, partSize: 5 * MiB });
    try {
      const streamed = await c.upload(randomBytes(SMALL_LIMIT + 1), { purpose: "user_data", filename: "big.bin" }).catch((e: unknown) => e);
      expect(streamed).toBeInstanceOf(TooLargeError);
      expect((streamed as FilesError).message).toMatch(/limit/);
      const parts = await c.upload(randomBytes(9 * MiB), { purpose: "user_data", filename: "big.bin" }).catch((e: unknown) => e);
      expect(parts).toBeInstanceOf(TooLargeError);
      expect((parts as FilesError).message).toMatch(/upload limit/);
      const names: string[] = [];
      for await (const f of c.list()) names.push(f.filename);
      expect(names).toEqual([]);
    } finally {
      c.close();
    }
  });

  it("a stored file that does not match what was sent is an IntegrityError (download side)", async () => {
    const file = await client.upload(Buffer.from("hello"), { purpose: "user_data", filename: "hello.txt" });
    // Tamper with what the client believes, not with the service: a wrong digest from the hasher.
    const lying = connect({ url: server.baseUrl, sha256: () => ({ update: () => undefined, digest: () => "0".repeat(64) }) });
    try {
      await expect(downloadBytes(lying, file.id)).rejects.toBeInstanceOf(IntegrityError);
    } finally {
      lying.close();
    }
  });
});

describe("TLS", () => {
  let tlsServer: ServerProcess;
  let caPem: string;
  beforeAll(async () => {
    const ca = makeCa("Files TS Library CA");
    const cert = issueServerCert(ca);
    caPem = ca.certPem;
    tlsServer = await startServer({ https: true, config: await config("tls", { tls: { cert_file: cert.certFile, key_file: cert.keyFile } }) });
  }, 60_000);
  afterAll(async () => {
    await tlsServer?.stop();
  });

  it("https:// with the CA: uploads in parts and downloads verified; without the CA, a clear failure", async () => {
    const c = connect({ url: tlsServer.baseUrl, ca: caPem, ...PARTS });
    try {
      const data = randomBytes(7 * MiB);
      const file = await c.upload(data, { purpose: "user_data", filename: "tls.bin" });
      expect(sha((await downloadBytes(c, file.id)).bytes)).toBe(sha(data));
    } finally {
      c.close();
    }
    const untrusted = connect({ url: tlsServer.baseUrl, retry: { attempts: 1 } });
    try {
      const err = await untrusted.list().next().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FilesError);
      expect(String((err as FilesError).message)).toMatch(/certificate/i);
    } finally {
      untrusted.close();
    }
  });

  it("refuses TLS options with an http:// url, and half a client certificate", () => {
    expect(() => connect({ url: server.baseUrl, ca: caPem })).toThrow(/https:\/\//);
    expect(() => connect({ url: tlsServer.baseUrl, cert: "x" })).toThrow(/both cert and key/);
  });
});
