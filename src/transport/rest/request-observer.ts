import type { Logger } from "pino";
import { REQUEST_ID_HEADER, requestIdFrom } from "../../observability/request-id.js";
import type { RequestSink } from "../../observability/sinks.js";
import type { HttpRequest, HttpResponse } from "./http-io.js";

/** Routes whose request bodies are uploads, and whose response bodies are downloads, in the metrics. */
const UPLOADS = new Set(["POST /v1/files", "POST /v1/uploads/{id}/parts"]);
const DOWNLOADS = new Set(["GET /v1/files/{id}/content"]);

/**
 * Gives a REST request its id (the caller's x-request-id when sane, else a new one, echoed in the
 * response), counts the body bytes read and written, and when the response closes writes one log
 * line, like the RPCs', and feeds the metrics. The route template rather than the raw path keeps
 * ids out of both.
 */
export function observeRequest(
  req: HttpRequest,
  res: HttpResponse,
  route: string,
  logger: Logger,
  metrics?: RequestSink,
): { principal: string | null } {
  const observed = { principal: null as string | null };
  const started = performance.now();
  const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
  res.setHeader(REQUEST_ID_HEADER, requestId);
  const bytes = countBodyBytes(req, res);
  const key = `${req.method} ${route}`;
  const endInFlight = UPLOADS.has(key) ? metrics?.uploadStarted() : undefined;
  res.once("close", () => {
    endInFlight?.();
    const seconds = (performance.now() - started) / 1000;
    const outcome = res.writableFinished && res.statusCode < 400 ? "ok" : "error";
    metrics?.request(route, req.method ?? "", String(res.statusCode));
    if (UPLOADS.has(key)) metrics?.upload("rest", bytes.in, seconds, outcome);
    if (DOWNLOADS.has(key)) metrics?.download("rest", bytes.out, seconds, outcome);
    logger.info(
      {
        method: req.method,
        route,
        status: res.statusCode,
        completed: res.writableFinished,
        ms: Math.round(seconds * 1000),
        bytes_in: bytes.in,
        bytes_out: bytes.out,
        principal: observed.principal,
        request_id: requestId,
      },
      "http",
    );
  });
  return observed;
}

/**
 * Counts body bytes as they are consumed and written. Reads are seen through `emit("data")`, which
 * every way of reading a stream (pipe, async iteration, "data" listeners) goes through; adding a
 * listener instead would switch the request into flowing mode before its reader is attached.
 */
function countBodyBytes(req: HttpRequest, res: HttpResponse): { in: number; out: number } {
  const bytes = { in: 0, out: 0 };
  const emit = req.emit.bind(req) as (event: string | symbol, ...args: unknown[]) => boolean;
  (req as { emit: unknown }).emit = (event: string | symbol, ...args: unknown[]) => {
    if (event === "data") bytes.in += sizeOf(args[0]);
    return emit(event, ...args);
  };
  // HTTP/2's end(chunk) writes the chunk through this.write(); HTTP/1's does not.
  let ending = false;
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
    if (!ending) bytes.out += sizeOf(chunk, rest[0]);
    return write(chunk, ...rest);
  };
  const end = res.end.bind(res) as (...args: unknown[]) => unknown;
  (res as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== "function") bytes.out += sizeOf(chunk, rest[0]);
    ending = true;
    try {
      return end(chunk, ...rest);
    } finally {
      ending = false;
    }
  };
  return bytes;
}

function sizeOf(chunk: unknown, encoding?: unknown): number {
  if (typeof chunk === "string") return Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}
