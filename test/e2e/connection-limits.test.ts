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
      push = (chunk) => {
        try {
          if (chunk === null) controller.close();
          else controller.enqueue(new TextEncoder().encode(chunk));
        } catch {
          // The request has already been answered (refused) and its body dropped.
        }
      };
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
    key,
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
    async function* small(filename = "r.bin") {
      yield { payload: { case: "metadata" as const, value: { filename, purpose: FilePurpose.ASSISTANTS } } };
      yield { payload: { case: "chunk" as const, value: randomBytes(100) } };
    }
    const refusal = (key: string) =>
      rpc(key)
        .uploadFile(small())
        .then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
    // Slow uploads that stay in flight, trickling bytes well within the idle timeout. A probe that
    // got through may have taken a slot just as a slow upload asked for one: a slow upload that was
    // answered (refused) is replaced, so the test waits for the state it needs instead of racing.
    const slow = new Map<ReturnType<typeof slowRestUpload>, boolean>();
    const startSlow = (key: string) => {
      const upload = slowRestUpload(key);
      slow.set(upload, false);
      void upload.response.then(() => slow.set(upload, true), () => slow.set(upload, true));
      return upload;
    };
    const holding = (key: string, count: number) => {
      const mine = [...slow].filter(([u]) => u.key === key);
      for (const [u, answered] of mine) if (answered) slow.delete(u);
      for (let i = [...slow.keys()].filter((u) => u.key === key).length; i < count; i++) startSlow(key);
    };
    const trickle = setInterval(() => [...slow.keys()].forEach((u) => u.send("y")), 300);
    try {
      // Alice's two slow uploads hold her share: a third upload of hers is refused.
      await eventually(async () => {
        holding(ALICE, 2);
        const err = await refusal(ALICE);
        expect(err?.code).toBe(Code.ResourceExhausted);
        expect(err?.rawMessage).toMatch(/at most 2 at once/);
      }, 60_000);
      const third = slowRestUpload(ALICE);
      third.finish();
      const refused = await third.response;
      expect(refused.status).toBe(429);
      expect(refused.headers.get("x-should-retry")).toBeNull();
      const body = (await refused.json()) as { error: { message: string; code: string; type: string } };
      expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "invalid_request_error" });
      expect(body.error.message).toMatch(/at most 2 at once/);

      // Bob has his own share, but with one slow upload of his, the server's 3 slots are all taken.
      await eventually(async () => {
        holding(ALICE, 2);
        holding(BOB, 1);
        const err = await refusal(BOB);
        expect(err?.code).toBe(Code.ResourceExhausted);
        expect(err?.rawMessage).toMatch(/maximum of 3 uploads/);
      }, 60_000);
    } finally {
      clearInterval(trickle);
      for (const u of slow.keys()) u.finish();
    }
    const answers = await Promise.all([...slow.keys()].map((u) => u.response));
    // Those still holding a slot when the body ended were stored.
    expect(answers.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(3);
    for (const r of answers) expect([200, 429]).toContain(r.status);
    // The slots are free again.
    const ok = await rpc(ALICE).uploadFile(small("after.bin"));
    expect(ok.file?.bytes).toBe(100n);
    const bobOk = await rpc(BOB).uploadFile(small("after.bin"));
    expect(bobOk.file?.bytes).toBe(100n);
  });
});
