/**
 * DownloadFile as a plain gRPC server stream on node:http2, through connect-node's session
 * manager (the same connection as every other call). connect-es 2.3 keeps every message of a
 * server stream reachable until the call ends (each read is a Promise.race against a call-long
 * promise), so a download through it holds the whole file in memory, or must be cut into many
 * calls, each one a ranged GET on S3. This reads one message at a time, lets each go once
 * written, and pauses the stream while the writer is busy (HTTP/2 flow control does the rest).
 */
import type http2 from "node:http2";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { DownloadFileRequestSchema, DownloadFileResponseSchema, FilesService, type DownloadFileResponse } from "../../../gen/ts/files/v1/files_pb.js";
import { REQUEST_ID_HEADER } from "./errors.js";

const PATH = `/${FilesService.typeName}/${FilesService.method.downloadFile.name}`;

export interface DownloadCall {
  fileId: string;
  offset: bigint;
  length?: bigint;
}

/** The gRPC spec's percent-decoding of grpc-message (invalid escapes are kept as they are). */
function decodeMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export function statusError(headers: http2.IncomingHttpHeaders, requestId: string): ConnectError | undefined {
  const status = headers["grpc-status"];
  if (status === undefined || status === "0") return undefined;
  const code = Number(status);
  const message = decodeMessage(String(headers["grpc-message"] ?? ""));
  const metadata = new Headers({ [REQUEST_ID_HEADER]: String(headers[REQUEST_ID_HEADER] ?? requestId) });
  return new ConnectError(message, Number.isInteger(code) && code > 0 && code <= 16 ? (code as Code) : Code.Unknown, metadata);
}

/** A stream that broke without a status (reset, GOAWAY, socket gone): worth resuming. */
export function brokenStream(err: unknown): ConnectError {
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectError(`the download stream broke: ${message}`, Code.Unavailable, undefined, undefined, err);
}

/**
 * One DownloadFile call; yields its messages in order. `headers` are the call's own (auth,
 * request id); errors are ConnectErrors, as connect's own calls throw them.
 */
export async function* downloadStream(
  sessions: Http2SessionManager,
  call: DownloadCall,
  headers: Record<string, string>,
  maxMessageBytes: number,
  signal?: AbortSignal,
): AsyncGenerator<DownloadFileResponse> {
  signal?.throwIfAborted();
  const requestId = headers[REQUEST_ID_HEADER] ?? "";
  const body = toBinary(DownloadFileRequestSchema, create(DownloadFileRequestSchema, call));
  const envelope = Buffer.alloc(5 + body.length);
  envelope.writeUInt32BE(body.length, 1);
  envelope.set(body, 5);
  let stream: http2.ClientHttp2Stream;
  try {
    stream = await sessions.request("POST", PATH, { "content-type": "application/grpc+proto", te: "trailers", ...headers }, {});
  } catch (err) {
    throw err instanceof ConnectError ? err : brokenStream(err);
  }
  const onAbort = () => stream.close(0x8 /* CANCEL */);
  signal?.addEventListener("abort", onAbort, { once: true });

  // Events become a queue the generator drains: frames of bytes, then the end (trailers) or an error.
  let buffered: Buffer[] = [];
  let bufferedBytes = 0;
  let ended = false;
  let failure: unknown;
  let trailers: http2.IncomingHttpHeaders | undefined;
  let responseHeaders: http2.IncomingHttpHeaders | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  stream.on("response", (h) => {
    responseHeaders = h;
    notify();
  });
  stream.on("data", (chunk: Buffer) => {
    buffered.push(chunk);
    bufferedBytes += chunk.length;
    // Hold the stream while a message or more waits here; flow control then holds the server.
    if (bufferedBytes > maxMessageBytes + 5) stream.pause();
    notify();
  });
  stream.on("trailers", (t) => {
    trailers = t;
  });
  stream.on("end", () => {
    ended = true;
    notify();
  });
  stream.on("error", (err) => {
    failure = err;
    notify();
  });
  stream.on("close", () => {
    if (!ended && failure === undefined) failure = new Error(`stream closed with code ${stream.rstCode}`);
    notify();
  });
  stream.end(envelope);

  /** Removes and returns the first `n` buffered bytes (copied only when they span frames). */
  const take = (n: number): Buffer => {
    const parts: Buffer[] = [];
    for (let need = n; need > 0; ) {
      const first = buffered[0]!;
      if (first.length <= need) {
        parts.push(first);
        buffered.shift();
        need -= first.length;
      } else {
        parts.push(first.subarray(0, need));
        buffered[0] = first.subarray(need);
        need = 0;
      }
    }
    bufferedBytes -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  };
  try {
    for (;;) {
      if (bufferedBytes >= 5) {
        if (buffered[0]!.length < 5) buffered = [Buffer.concat(buffered, bufferedBytes)];
        const head = buffered[0]!;
        const flags = head[0]!;
        const size = head.readUInt32BE(1);
        if (flags & 1) throw new ConnectError("the service sent a compressed message, which was not asked for", Code.Internal);
        if (size > maxMessageBytes) throw new ConnectError(`message of ${size} bytes is larger than the limit of ${maxMessageBytes}`, Code.ResourceExhausted);
        if (bufferedBytes >= 5 + size) {
          const frame = take(5 + size);
          yield fromBinary(DownloadFileResponseSchema, frame.subarray(5));
          if (bufferedBytes <= maxMessageBytes) stream.resume();
          continue;
        }
        stream.resume();
      }
      if (failure !== undefined) {
        if (signal?.aborted) throw signal.reason;
        throw brokenStream(failure);
      }
      if (ended) {
        if (bufferedBytes > 0) throw new ConnectError(`the stream ended inside a message (${bufferedBytes} bytes left over)`, Code.Unavailable);
        const status = statusError(trailers ?? responseHeaders ?? {}, requestId);
        if (status) throw status;
        if ((trailers ?? responseHeaders)?.["grpc-status"] === undefined) {
          const http = Number(responseHeaders?.[":status"] ?? 0);
          throw new ConnectError(`the stream ended without a gRPC status${http !== 200 ? ` (HTTP ${http})` : ""}`, http === 200 ? Code.Unavailable : Code.Unknown);
        }
        return;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!stream.closed) stream.close(0x8 /* CANCEL */);
  }
}
