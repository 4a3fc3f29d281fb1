import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { REQUEST_ID_HEADER, requestIdFrom } from "../../observability/request-id.js";
import type { RequestSink, Transport } from "../../observability/sinks.js";
import { PRINCIPAL } from "./principal.js";
import { STREAMED_PART_DATA } from "./streamed-part-data.js";

/** RPCs whose bytes count as uploads or downloads in the metrics (the per-call log counts every RPC's chunk bytes). */
const UPLOAD_RPCS = new Set(["UploadFile", "AddUploadPart"]);
const DOWNLOAD_RPCS = new Set(["DownloadFile"]);

/**
 * One log line per RPC, written when the call (including any response stream) ends, carrying a
 * request id (the caller's x-request-id when sane, else a new one; echoed as a response header,
 * or as error metadata when the call fails) and the chunk bytes that went in and out. Also feeds
 * the request, transfer and in-flight metrics.
 */
export function observeInterceptor(logger: Logger, metrics?: RequestSink): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const rpc = `${req.service.typeName}/${req.method.name}`;
    const requestId = requestIdFrom(req.header.get(REQUEST_ID_HEADER));
    const transport = transportOf(req.header.get("content-type"));
    const kind = UPLOAD_RPCS.has(req.method.name) ? "upload" : DOWNLOAD_RPCS.has(req.method.name) ? "download" : undefined;
    const endInFlight = kind === "upload" ? metrics?.uploadStarted() : undefined;
    const bytes = { in: 0, out: 0 };
    let finished = false;
    const done = (err?: unknown) => {
      if (finished) return;
      finished = true;
      endInFlight?.();
      const seconds = (performance.now() - started) / 1000;
      const error = err === undefined ? undefined : ConnectError.from(err);
      metrics?.request(rpc, req.requestMethod, error ? codeName(error.code) : "ok");
      const outcome = error ? "error" : "ok";
      if (kind === "upload") metrics?.upload(transport, bytes.in, seconds, outcome);
      if (kind === "download") metrics?.download(transport, bytes.out, seconds, outcome);
      const fields = {
        rpc,
        code: error ? Code[error.code] : "ok",
        ms: Math.round(seconds * 1000),
        transport,
        bytes_in: bytes.in,
        bytes_out: bytes.out,
        principal: req.contextValues.get(PRINCIPAL),
        request_id: requestId,
      };
      if (error === undefined) logger.info(fields, "rpc");
      else logger.info({ ...fields, error: error.rawMessage }, "rpc");
    };
    try {
      if (!req.stream) bytes.in += chunkBytes(req.message);
      const streamed = req.contextValues.get(STREAMED_PART_DATA);
      if (streamed) req.contextValues.set(STREAMED_PART_DATA, countBytes(streamed, (n) => (bytes.in += n)));
      const res = await next(req.stream ? { ...req, message: countChunks(req.message, (n) => (bytes.in += n)) } : req);
      endInFlight?.(); // the upload is stored once the implementation has answered
      res.header.set(REQUEST_ID_HEADER, requestId);
      if (!res.stream) {
        bytes.out += chunkBytes(res.message);
        done();
        return res;
      }
      return { ...res, message: observeStream(res.message, (n) => (bytes.out += n), done) };
    } catch (err) {
      if (err instanceof ConnectError) err.metadata.set(REQUEST_ID_HEADER, requestId);
      done(err);
      throw err;
    }
  };
}

/** The RPC protocol, from the request's content-type (a Connect unary GET has none). */
export function transportOf(contentType: string | null): Transport {
  const type = (contentType ?? "").toLowerCase();
  if (type.startsWith("application/grpc-web")) return "grpc_web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** "NotFound" → "not_found", for metric labels. */
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

async function* countBytes(source: AsyncIterable<Uint8Array>, add: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    add(chunk.byteLength);
    yield chunk;
  }
}

/** File bytes in a message: an UploadFile or DownloadFile chunk, or an AddUploadPart's data. */
function chunkBytes(message: unknown): number {
  const m = message as { payload?: { case?: unknown; value?: unknown }; data?: unknown };
  if (m.payload?.case === "chunk" && m.payload.value instanceof Uint8Array) return m.payload.value.byteLength;
  if (m.data instanceof Uint8Array) return m.data.byteLength;
  return 0;
}

async function* countChunks<T>(source: AsyncIterable<T>, add: (n: number) => void): AsyncGenerator<T> {
  for await (const message of source) {
    add(chunkBytes(message));
    yield message;
  }
}

/**
 * Counts a response stream's chunk bytes and calls `done` once it ends, fails, or is abandoned (a
 * client that went away). One generator for both, so each message pays for one await, not two.
 */
async function* observeStream<T>(source: AsyncIterable<T>, add: (n: number) => void, done: (err?: unknown) => void): AsyncGenerator<T> {
  try {
    for await (const message of source) {
      add(chunkBytes(message));
      yield message;
    }
    done();
  } catch (err) {
    done(err);
    throw err;
  } finally {
    done(new ConnectError("the stream was abandoned", Code.Canceled));
  }
}
