/**
 * Helpers shared by the fault tests (test/e2e/faults-*.test.ts): a REST upload that can be held
 * mid-body and still reads an early answer, bounded requests, gRPC health, and a scan of what a
 * client sees for anything internal.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { ConnectError, createClient, type Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { expect } from "vitest";
import { Health, type HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb.js";
import { MiB } from "./test-helpers.js";

/** Far above any failure the fault tests provoke (seconds): an answer slower than this is a hang. */
export const ANSWER_BOUND_MS = 30_000;

/** Things no client may see: [what, pattern]. */
export type Forbidden = [string, RegExp | string][];

/** Always forbidden, whatever failed: stack traces, SQL, and the names of low-level errors. */
export const ALWAYS_FORBIDDEN: Forbidden = [
  ["a stack trace", /\n\s+at |\bat .+\.(js|ts):\d+/],
  ["SQL", /\bselect |\binsert |\bupdate "|\bdelete from|openai_(files|uploads|upload_parts)/i],
  ["a low-level error", /ECONNREFUSED|ECONNRESET|ETIMEDOUT|TimeoutError|socket hang up|Connection terminated|knex|mikro-?orm/i],
];

/** Fails when `text` (an error message or a response body) shows anything in `forbidden`. */
export function expectNoLeak(text: string, forbidden: Forbidden, context: string): void {
  for (const [what, pattern] of [...ALWAYS_FORBIDDEN, ...forbidden]) {
    const found = typeof pattern === "string" ? text.includes(pattern) : pattern.test(text);
    expect(found, `${context} shows ${what}: ${text}`).toBe(false);
  }
}

export interface RestAnswer {
  status: number;
  body: string;
  ms: number;
}

/** A REST answer of 503 in OpenAI's error shape, showing nothing internal. */
export function expectRest503(answer: RestAnswer, forbidden: Forbidden, context: string): void {
  expect(answer.status, `${context}: ${answer.body}`).toBe(503);
  const body = JSON.parse(answer.body) as { error: { message: string; type: string; code: string | null } };
  expect(body.error.type, context).toBe("server_error");
  expect(body.error.code, context).toBe("service_unavailable");
  expect(body.error.message, context).toMatch(/unavailable/i);
  expectNoLeak(answer.body, forbidden, context);
}

/** The gRPC code of a failed Connect (connect-node) or @grpc/grpc-js call, after scanning all its text for leaks. */
export function grpcFailure(err: unknown, forbidden: Forbidden, context: string): Code | number | undefined {
  expect(err, `${context}: expected the call to fail`).toBeInstanceOf(Error);
  if (err instanceof ConnectError) {
    expectNoLeak(`${err.message}\n${err.rawMessage}\n${JSON.stringify(err.details)}`, forbidden, context);
    return err.code;
  }
  const e = err as Error & { code?: number; details?: string };
  expectNoLeak(`${e.message}\n${e.details ?? ""}`, forbidden, context);
  return e.code;
}

/** The error a call ends with (undefined when it succeeds, which the caller's code check then fails). */
export const failureOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (err: unknown) => err,
  );

/** fetch with a bound, keeping the body text. */
export async function fetchAnswer(url: string, init?: RequestInit): Promise<RestAnswer> {
  const t0 = Date.now();
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(ANSWER_BOUND_MS) });
  return { status: res.status, body: await res.text(), ms: Date.now() - t0 };
}

/** grpc.health.v1 Check for the server as a whole. */
export async function healthStatus(baseUrl: string): Promise<HealthCheckResponse_ServingStatus> {
  const health = createClient(Health, createGrpcTransport({ baseUrl }));
  return (await health.check({ service: "" }, { timeoutMs: ANSWER_BOUND_MS })).status;
}

/** A point a byte source waits at until the test opens it. */
export interface Gate {
  /** Resolves once the source has reached the gate and is waiting. */
  reached: Promise<void>;
  open(): void;
  /** For the source: arrive, then wait for `opened`. */
  arrive(): void;
  opened: Promise<void>;
}

export function gate(): Gate {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (arrive = r));
  const opened = new Promise<void>((r) => (open = r));
  return { reached, arrive, open, opened };
}

/** `total` bytes in 1 MiB blocks (one random block repeated), pausing at `at` bytes until `g` opens. */
export async function* gatedBytes(total: number, at: number, g: Gate): AsyncGenerator<Buffer> {
  const block = randomBytes(MiB);
  for (let sent = 0; sent < total; sent += MiB) {
    if (sent === at) {
      g.arrive();
      await g.opened;
    }
    yield total - sent >= MiB ? block : block.subarray(0, total - sent);
  }
}

/**
 * POST /v1/files with a multipart form (purpose first) whose file part streams from `chunks`
 * (`total` bytes, declared in Content-Length). Resolves with the answer, also one that comes while
 * the body is still being sent (the client then stops sending); rejects if the connection fails
 * without an answer, or if none comes within ANSWER_BOUND_MS.
 */
export function restUpload(baseUrl: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, total: number): Promise<RestAnswer> {
  const boundary = `----faults${randomBytes(8).toString("hex")}`;
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n` +
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const t0 = Date.now();
  return new Promise<RestAnswer>((resolve, reject) => {
    let answered = false;
    let onAnswer: () => void = () => {};
    const answeredPromise = new Promise<void>((r) => (onAnswer = r));
    const req = http.request(`${baseUrl}/v1/files`, {
      method: "POST",
      headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": head.length + total + tail.length },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${ANSWER_BOUND_MS} ms (a hang)`));
    }, ANSWER_BOUND_MS);
    req.on("error", (err) => {
      if (!answered) {
        clearTimeout(timer);
        reject(new Error(`the connection failed without an answer: ${err.message}`));
      }
    });
    req.on("response", (res) => {
      answered = true;
      onAnswer();
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, body, ms: Date.now() - t0 });
        req.destroy(); // stop sending a body nobody wants
      });
    });
    void (async () => {
      req.write(head);
      for await (const chunk of chunks) {
        if (answered) return;
        if (!req.write(chunk)) await Promise.race([new Promise((r) => req.once("drain", r)), answeredPromise]);
      }
      if (!answered) req.end(tail);
    })().catch(() => {});
  });
}
