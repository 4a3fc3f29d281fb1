/**
 * AddUploadPart as a plain gRPC unary call on node:http2, through connect-node's session manager
 * (the same connection as every other call). Through connect-es a part is serialized into a new
 * buffer and then copied again into its envelope: two more part-sized buffers per part, freed
 * only at the next collection. Here the envelope prefix and the fields before `data` are written
 * as a few bytes, and then the part itself, as it is.
 */
import type http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Http2SessionManager } from "@connectrpc/connect-node";
import { AddUploadPartResponseSchema, FilesService, type AddUploadPartResponse } from "../../../gen/ts/files/v1/files_pb.js";
import { REQUEST_ID_HEADER } from "./errors.js";
import { brokenStream, statusError } from "./grpc-download.js";

const PATH = `/${FilesService.typeName}/${FilesService.method.addUploadPart.name}`;
const UPLOAD_ID_TAG = (1 << 3) | 2;
const DATA_TAG = (2 << 3) | 2;

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return out;
}

/** The envelope prefix and AddUploadPartRequest's bytes up to `data`'s content, in protobuf's field order. */
export function partHead(uploadId: string, dataBytes: number): Buffer {
  const id = Buffer.from(uploadId, "utf8");
  const fields = Buffer.from([UPLOAD_ID_TAG, ...varint(id.length), ...id, ...(dataBytes > 0 ? [DATA_TAG, ...varint(dataBytes)] : [])]);
  const head = Buffer.alloc(5 + fields.length);
  head.writeUInt32BE(fields.length + dataBytes, 1);
  fields.copy(head, 5);
  return head;
}

export interface PartCallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** One AddUploadPart call; errors are ConnectErrors, as connect's own calls throw them. */
export async function addUploadPartCall(
  sessions: Http2SessionManager,
  request: { uploadId: string; data: Uint8Array },
  headers: Record<string, string>,
  maxMessageBytes: number,
  options: PartCallOptions = {},
): Promise<AddUploadPartResponse> {
  const { signal, timeoutMs } = options;
  signal?.throwIfAborted();
  const requestId = headers[REQUEST_ID_HEADER] ?? "";
  const head = partHead(request.uploadId, request.data.byteLength);
  if (head.length - 5 + request.data.byteLength > maxMessageBytes) {
    throw new ConnectError(`message of ${head.length - 5 + request.data.byteLength} bytes is larger than the limit of ${maxMessageBytes}`, Code.ResourceExhausted);
  }
  let stream: http2.ClientHttp2Stream;
  try {
    stream = await sessions.request(
      "POST",
      PATH,
      { "content-type": "application/grpc+proto", te: "trailers", ...(timeoutMs !== undefined && { "grpc-timeout": `${Math.max(1, Math.ceil(timeoutMs))}m` }), ...headers },
      {},
    );
  } catch (err) {
    throw err instanceof ConnectError ? err : brokenStream(err);
  }
  return new Promise<AddUploadPartResponse>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let responseHeaders: http2.IncomingHttpHeaders | undefined;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let settled = false;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => finish(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs + 1000);
    const onAbort = () => finish(signal?.reason ?? new ConnectError("the call was aborted", Code.Canceled));
    signal?.addEventListener("abort", onAbort, { once: true });
    function finish(err: unknown, value?: AddUploadPartResponse): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      if (!stream.closed) stream.close(err ? 0x8 /* CANCEL */ : 0);
      if (err) reject(err);
      else resolve(value!);
    }
    stream.on("response", (h) => (responseHeaders = h));
    stream.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxMessageBytes + 5) return finish(new ConnectError(`the response is larger than the limit of ${maxMessageBytes}`, Code.ResourceExhausted));
      chunks.push(chunk);
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("error", (err) => finish(brokenStream(err)));
    stream.on("close", () => {
      const status = trailers ?? responseHeaders;
      if (status?.["grpc-status"] === undefined) {
        const http = Number(responseHeaders?.[":status"] ?? 0);
        return finish(
          responseHeaders === undefined
            ? brokenStream(new Error(`stream closed with code ${stream.rstCode}`))
            : new ConnectError(`the call ended without a gRPC status${http !== 200 ? ` (HTTP ${http})` : ""}`, http === 200 ? Code.Unavailable : Code.Unknown),
        );
      }
      const error = statusError(status, requestId);
      if (error) return finish(error);
      const body = Buffer.concat(chunks);
      if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) return finish(new ConnectError("the response is not one whole message", Code.Internal));
      if (body[0]! & 1) return finish(new ConnectError("the service sent a compressed message, which was not asked for", Code.Internal));
      try {
        finish(undefined, fromBinary(AddUploadPartResponseSchema, body.subarray(5)));
      } catch (err) {
        finish(new ConnectError(`parse binary: ${(err as Error).message}`, Code.Internal));
      }
    });
    stream.write(head);
    stream.end(request.data);
  });
}
