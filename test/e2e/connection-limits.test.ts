/**
 * Protection against slow and greedy clients, through the real server: a connection that says
 * nothing, a request head that never ends, an upload that stalls (HTTP/1.1 and an HTTP/2 stream),
 * and more concurrent uploads than a principal, or the server, allows.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually } from "../support/test-helpers.js";

const ALICE = "sk-test-limits-alice-000000000";
const BOB = "sk-test-limits-bob-00000000000";
const HEADER_TIMEOUT_S = 1;
const IDLE_TIMEOUT_S = 2;

let server: ServerProcess;
let bucket: string;

async function startWithLimits(label: string, limits: object): Promise<void> {
  bucket = await createTestBucket(label);
  const dir = await tempDir(label);
  server = await startServer({
    config: {
      ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }),
      server: { auth: { api_keys: [{ key: ALICE, principal: "alice" }, { key: BOB, principal: "bob" }] }, limits },
    },
  });
}

afterEach(async () => {
  await server?.stop();
});

/** Opens a raw connection, writes `head`, and resolves with how long the server kept it open and what it said. */
function holdOpen(head: string, maxMs: number): Promise<{ ms: number; reply: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(server.port, "127.0.0.1", () => {
      if (head) socket.write(head);
    });
    let reply = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => (reply += d));
    socket.on("error", () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${maxMs} ms`));
    }, maxMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - started, reply });
    });
  });
}

async function emptyBucket(): Promise<void> {
  await eventually(async () => {
    expect(await listMultipartUploads(bucket)).toEqual([]);
    expect(await listAllKeys(bucket)).toEqual([]);
  });
}

const authed = (key: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};
const rpc = (key: string) => createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [authed(key)] }));

/** A REST upload whose body is sent by hand, a piece at a time, so the test decides when it ends. */
function slowRestUpload(key: string) {
  const boundary = "----limits" + randomBytes(8).toString("hex");
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  let push!: (chunk: string | null) => void;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (chunk) => (chunk === null ? controller.close() : controller.enqueue(new TextEncoder().encode(chunk)));
      push(head);
    },
  });
  const response = fetch(`${server.baseUrl}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: "half",
  } as RequestInit);
  return {
    response,
    send: (text: string) => push(text),
    finish: () => {
      push(tail);
      push(null);
    },
  };
}

describe("slow clients", () => {
  beforeEach(() => startWithLimits("conn-limits-slow", { header_timeout_seconds: HEADER_TIMEOUT_S, idle_timeout_seconds: IDLE_TIMEOUT_S }));

  it("a connection that sends nothing is closed after the header timeout", async () => {
    const { ms } = await holdOpen("", 10_000);
    expect(ms).toBeGreaterThanOrEqual(HEADER_TIMEOUT_S * 1000 - 100);
    expect(ms).toBeLessThan(HEADER_TIMEOUT_S * 1000 + 3_000);
  });

  it("a request head that never ends is answered 408 and closed", async () => {
    const { ms, reply } = await holdOpen("GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Slow: ", 10_000);
    expect(reply).toMatch(/^HTTP\/1\.1 408/);
    expect(ms).toBeLessThan(HEADER_TIMEOUT_S * 1000 + 3_000);
  });

  it("an HTTP/1.1 upload that stalls mid-body is cut off after the idle timeout, leaving nothing", async () => {
    const upload = slowRestUpload(ALICE);
    upload.send("x".repeat(64 * 1024));
    const started = Date.now();
    await expect(upload.response).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(IDLE_TIMEOUT_S * 1000 + 4_000);
    await emptyBucket();
    const list = await fetch(`${server.baseUrl}/v1/files`, { headers: { authorization: `Bearer ${ALICE}` } });
    expect(((await list.json()) as { data: unknown[] }).data).toEqual([]);
  });

  it("an HTTP/2 stream that stalls is cancelled while its session keeps serving other calls", async () => {
    const client = rpc(ALICE);
    let release!: () => void;
    const stalled = new Promise<void>((r) => (release = r));
    async function* messages() {
      yield { payload: { case: "metadata" as const, value: { filename: "stall.bin", purpose: FilePurpose.ASSISTANTS } } };
      yield { payload: { case: "chunk" as const, value: randomBytes(1024) } };
      await stalled; // never sends the rest
    }
    const started = Date.now();
    const upload = client.uploadFile(messages()).catch((e: unknown) => ConnectError.from(e));
    // Meanwhile the same session (one transport, one HTTP/2 connection) answers other calls.
    for (let i = 0; i < 3; i++) {
      expect((await client.listFiles({ limit: 1 })).data).toEqual([]);
      await new Promise((r) => setTimeout(r, 500));
    }
    const err = await upload;
    release();
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code.Canceled, Code.Unavailable, Code.Internal]).toContain((err as ConnectError).code);
    expect(Date.now() - started).toBeLessThan(IDLE_TIMEOUT_S * 1000 + 4_000);
    expect((await client.listFiles({ limit: 1 })).data).toEqual([]);
    await emptyBucket();
  });
});

describe("concurrent uploads", () => {
  // A generous idle timeout: the slow uploads below must stay in flight even on a starved machine.
  beforeEach(() => startWithLimits("conn-limits-slots", { max_concurrent_uploads_per_principal: 2, max_concurrent_uploads: 3 }));

  it("are capped per principal (429, retryable / RESOURCE_EXHAUSTED) and overall, and slots come back when uploads end", async () => {
    // Two of alice's uploads stay in flight, trickling bytes faster than the idle timeout.
    const slow = [slowRestUpload(ALICE), slowRestUpload(ALICE)];
    const trickle = setInterval(() => slow.forEach((u) => u.send("y")), 300);
    try {
      async function* small() {
        yield { payload: { case: "metadata" as const, value: { filename: "r.bin", purpose: FilePurpose.ASSISTANTS } } };
        yield { payload: { case: "chunk" as const, value: randomBytes(100) } };
      }
      // Once both slow uploads have reached storage (their form's file part has arrived), a third is refused.
      await eventually(async () => {
        const grpcRefused = await rpc(ALICE).uploadFile(small()).then(
          (ok) => ok,
          (e: unknown) => ConnectError.from(e),
        );
        expect(grpcRefused).toBeInstanceOf(ConnectError);
        expect((grpcRefused as ConnectError).code).toBe(Code.ResourceExhausted);
      });
      const third = slowRestUpload(ALICE);
      third.finish();
      const refused = await third.response;
      expect(refused.status).toBe(429);
      expect(refused.headers.get("x-should-retry")).toBeNull();
      const body = (await refused.json()) as { error: { message: string; code: string; type: string } };
      expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "invalid_request_error" });
      expect(body.error.message).toMatch(/at most 2 at once/);


      // Bob has his own share, but only one slot is left overall.
      const bobSlow = slowRestUpload(BOB);
      const bobTrickle = setInterval(() => bobSlow.send("z"), 300);
      try {
        await eventually(async () => {
          const overall = await rpc(BOB).uploadFile(small()).then(
            (ok) => ok,
            (e: unknown) => ConnectError.from(e),
          );
          expect(overall).toBeInstanceOf(ConnectError);
          expect((overall as ConnectError).code).toBe(Code.ResourceExhausted);
          expect((overall as ConnectError).rawMessage).toMatch(/maximum of 3 uploads/);
        });
      } finally {
        clearInterval(bobTrickle);
        bobSlow.finish();
      }
      expect((await bobSlow.response).status).toBe(200);
    } finally {
      clearInterval(trickle);
      slow.forEach((u) => u.finish());
    }
    for (const u of slow) expect((await u.response).status).toBe(200);
    // Before the slow uploads held their slots, eventually() may have let small uploads through: count what is there.
    const listed = (await (await fetch(`${server.baseUrl}/v1/files?limit=100`, { headers: { authorization: `Bearer ${ALICE}` } })).json()) as {
      data: Array<{ filename: string }>;
    };
    expect(listed.data.filter((f) => f.filename === "slow.bin")).toHaveLength(2);
    // The slots are free again.
    async function* small() {
      yield { payload: { case: "metadata" as const, value: { filename: "after.bin", purpose: FilePurpose.ASSISTANTS } } };
      yield { payload: { case: "chunk" as const, value: randomBytes(100) } };
    }
    const ok = await rpc(ALICE).uploadFile(small());
    expect(ok.file?.bytes).toBe(100n);
  });
});
