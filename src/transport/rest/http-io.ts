import type { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { RestError, toOpenAiError } from "./errors.js";

/** Requests and responses from either HTTP version, as the Connect adapter's fallback receives them. */
type Fallback = ReturnType<typeof connectNodeAdapter>;
export type HttpRequest = Parameters<Fallback>[0];
export type HttpResponse = Parameters<Fallback>[1];

/** JSON request bodies (Uploads create and complete) are small; anything larger is refused. */
const MAX_JSON_BYTES = 1024 * 1024;
/** After an early error answer, read at most this much of an unwanted request body before dropping the connection. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;
const DISCARD_TIMEOUT_MS = 10_000;

/** Headers that describe the exchange rather than a success, so an error answer keeps them. */
const KEPT_ON_ERROR = new Set(["content-range", "allow", "x-request-id", "www-authenticate"]);

export function sendJson(res: HttpResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}

/**
 * Answers with OpenAI's error shape. Client mistakes carry `x-should-retry: false`, which the
 * openai SDKs honour, so a bad request is never retried. When the request body was not read to
 * its end, the connection is closed after the answer instead of reading gigabytes nobody wants.
 */
export function sendError(req: HttpRequest, res: HttpResponse, err: unknown, logger: Logger): void {
  const { status, body, unexpected } = toOpenAiError(err);
  if (unexpected !== undefined) logger.error({ err: unexpected }, "a REST call failed on the server side");
  if (res.headersSent) {
    // Mid-stream: the status is gone; all that is left is to cut the body short so the client sees an error.
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  // Headers meant for a success (a file's type, ETag, filename) must not describe an error body.
  for (const name of res.getHeaderNames()) if (!KEPT_ON_ERROR.has(name)) res.removeHeader(name);
  // 429 is the one client-side status worth retrying: the same request may pass once load drops.
  if ((status < 500 && status !== 429) || status === 501) res.setHeader("x-should-retry", "false");
  if (!req.complete) discardAfterAnswer(req, res);
  sendJson(res, status, body);
}

/**
 * HTTP/1.1: the client is likely still sending. Let the rest of the body drain, so the client reads
 * our answer rather than a reset, but only up to a bound. "connection: close" would make Node close
 * the socket as soon as the answer is written, and a client still sending then sees EPIPE instead of
 * the answer: it is said only for bodies too large to drain, which are cut off anyway.
 * HTTP/2 streams are reset by the one-port server once the answer has ended.
 */
function discardAfterAnswer(req: HttpRequest, res: HttpResponse): void {
  if (req.httpVersionMajor >= 2) return;
  const socket = req.socket as HttpRequest["socket"] | null;
  if (!socket || req.destroyed) {
    // Nothing left to drain from: answer, then close.
    res.setHeader("connection", "close");
    return;
  }
  const declared = Number(req.headers["content-length"] ?? Number.POSITIVE_INFINITY);
  if (!(declared <= MAX_DISCARD_BYTES)) res.setHeader("connection", "close");
  let seen = 0;
  const timer = setTimeout(() => socket.destroy(), DISCARD_TIMEOUT_MS).unref();
  req.on("data", (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > MAX_DISCARD_BYTES) socket.destroy();
  });
  req.once("end", () => clearTimeout(timer));
  socket.once("close", () => clearTimeout(timer));
  req.resume();
}

/** Aborts when the client goes away before the response has been sent in full. */
export function clientGone(res: HttpResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new RestError(499, "The client closed the connection"));
  });
  return controller.signal;
}

/** Reads a small JSON object body; the media type, size and syntax are checked, each with its own answer. */
export async function readJsonObject(req: HttpRequest): Promise<Record<string, unknown>> {
  const type = mediaType(req.headers["content-type"]);
  if (type !== "application/json") {
    throw new RestError(415, `Expected a JSON body (Content-Type: application/json), got ${type ? `'${type}'` : "none"}`);
  }
  const declared = Number(req.headers["content-length"]);
  if (declared > MAX_JSON_BYTES) throw new RestError(413, `The JSON body is larger than ${MAX_JSON_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  // Read with events, not `for await`: leaving an async iteration early destroys the request,
  // and with it the socket that the error answer still has to go out on.
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_JSON_BYTES) return void chunks.push(chunk);
      cleanup();
      reject(new RestError(413, `The JSON body is larger than ${MAX_JSON_BYTES} bytes`));
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.pause();
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new RestError(400, "The request body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new RestError(400, "The request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** "multipart/form-data; boundary=x" → "multipart/form-data"; lowercase, parameters dropped. */
export function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Writes a stream of chunks with backpressure; stops, and closes the source, when the client goes away. */
export async function sendBody(res: HttpResponse, body: AsyncIterable<Uint8Array>): Promise<void> {
  const out = res as NodeJS.WritableStream & { destroyed: boolean; writableNeedDrain: boolean };
  for await (const chunk of body) {
    if (out.destroyed) return;
    if (!out.write(chunk)) await drainOrClose(res);
  }
  if (!out.destroyed) res.end();
}

function drainOrClose(res: HttpResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
