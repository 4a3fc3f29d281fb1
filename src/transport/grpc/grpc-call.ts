import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { create, fromBinary, isMessage, type DescField, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
// connect-es's own gRPC helpers (exported, but outside its semver promise; the lock file pins the
// version): deadlines and error trailers are parsed and written exactly as on the connect-es path.
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { REQUEST_ID_HEADER, requestIdFrom } from "../../observability/request-id.js";
import { encodeGrpcMessage } from "../grpc-message-encoding.js";
import { createCallContext } from "./call-context.js";
import { STREAMED_PART_DATA } from "../connect/streamed-part-data.js";
import { InboundMessages, type Decompressor } from "./inbound-messages.js";
import { StreamedBytesRequest } from "./streamed-bytes-request.js";
import { BYTES_FIELD_OVERHEAD, bulkBytesOf, encodeBytesField, encodeEnvelope } from "./outbound-envelopes.js";
import { ResponseWriter } from "./response-writer.js";

/** A method implementation as connect-es's ServiceImpl gives it: (request or stream, context) → response or stream. */
export type MethodImpl = (input: never, context: HandlerContext) => unknown;

export interface CallOptions {
  interceptors: Interceptor[];
  readMaxBytes: number;
  writeMaxBytes: number;
  acceptCompression: readonly Decompressor[];
  /** The accepted compressions' names, as grpc-accept-encoding lists them. */
  acceptEncoding: string;
  /** Unary methods whose request's bulk is this bytes field, streamed to the implementation (StreamedBytesRequest). */
  streamedBytes?: ReadonlyMap<DescMethod, DescField>;
}

type AnyRequest = Parameters<ReturnType<Interceptor>>[0];
type AnyResponse = Awaited<ReturnType<ReturnType<Interceptor>>>;

/**
 * Serves one gRPC call on its HTTP/2 stream: reads the grpc-timeout and grpc-encoding headers,
 * runs the same interceptors and method implementation connect-es would, and writes the
 * response. Request and response messages move between the stream and the implementation
 * without the copies and per-message stages of a general-purpose pipeline.
 */
export async function serveGrpcCall(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  method: DescMethod,
  impl: MethodImpl,
  options: CallOptions,
): Promise<void> {
  const timeout = parseTimeout(headerValue(headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
  const call = createCallContext(stream, headers, method, timeout.error ? undefined : timeout.timeoutMs, options.acceptEncoding);
  const { context } = call;
  const writer = new ResponseWriter(stream, context.signal);
  const compression = requestCompression(headerValue(headers["grpc-encoding"]), options.acceptCompression);
  // A compressed request must be whole before it can be inflated: it takes the general path.
  const bytesField = compression.decompressor || compression.error ? undefined : options.streamedBytes?.get(method);
  const input = bytesField
    ? new StreamedBytesRequest(stream, method.input, bytesField, options.readMaxBytes)
    : new InboundMessages(stream, {
        readMaxBytes: options.readMaxBytes,
        compression: compression.decompressor,
        decode: (bytes) => fromBinary(method.input, bytes),
      });
  if (input instanceof StreamedBytesRequest) context.values.set(STREAMED_PART_DATA, input.bytes);
  try {
    if (compression.error) throw compression.error;
    if (timeout.error) throw timeout.error;
    const res = await invoke(method, impl, context, input, options.interceptors);
    await writeResponse(writer, method.output, res, options.writeMaxBytes);
    writer.end(toNodeHeaders(res.trailer));
  } catch (err) {
    const error = callError(err, context);
    const trailer = setTrailerStatus(new Headers(context.responseTrailer), error);
    const trailers = toNodeHeaders(trailer);
    // connect-es percent-encodes with encodeURIComponent; the gRPC spec escapes less (see encodeGrpcMessage).
    trailers["grpc-message"] = encodeGrpcMessage(error.rawMessage);
    // A call refused before the interceptors ran (a bad grpc-timeout or encoding, an unreadable
    // request) still answers with a request id, as every other response does.
    trailers[REQUEST_ID_HEADER] ??= requestIdFrom(context.requestHeader.get(REQUEST_ID_HEADER));
    if (writer.started) writer.end(trailers);
    else writer.trailersOnly({ ...toNodeHeaders(context.responseHeader), ...trailers });
  } finally {
    void input.return();
    call.dispose();
  }
}

/** Runs the interceptors around the implementation, with the request shapes connect-es gives them. */
async function invoke(
  method: DescMethod,
  impl: MethodImpl,
  context: HandlerContext,
  input: InboundMessages<unknown> | StreamedBytesRequest,
  interceptors: Interceptor[],
): Promise<AnyResponse> {
  const common = {
    requestMethod: context.requestMethod,
    url: context.url,
    signal: context.signal,
    header: context.requestHeader,
    service: method.parent,
    method,
    contextValues: context.values,
  };
  const responseCommon = { service: method.parent, method, header: context.responseHeader, trailer: context.responseTrailer };
  const implContext = (req: AnyRequest): HandlerContext => ({ ...context, service: req.service, requestHeader: req.header, signal: req.signal, values: req.contextValues });
  const call = impl as (input: unknown, context: HandlerContext) => unknown;
  let innermost: ReturnType<Interceptor>;
  let request: AnyRequest;
  switch (method.methodKind) {
    case "unary":
      request = { ...common, stream: false, message: await input.single() } as AnyRequest;
      innermost = async (req) =>
        ({ ...responseCommon, stream: false, message: normalize(method.output, await call(req.message, implContext(req))) }) as AnyResponse;
      break;
    case "server_streaming":
      request = { ...common, stream: true, message: once(await input.single()) } as AnyRequest;
      innermost = async (req) => {
        const message = await single(req.message as AsyncIterable<unknown>);
        return { ...responseCommon, stream: true, message: call(message, implContext(req)) as AsyncIterable<unknown> } as AnyResponse;
      };
      break;
    case "client_streaming":
      if (input instanceof StreamedBytesRequest) throw new ConnectError(`${method.name}: a streamed bytes field is for unary calls`, Code.Internal);
      request = { ...common, stream: true, message: input } as AnyRequest;
      innermost = async (req) =>
        ({ ...responseCommon, stream: true, message: once(normalize(method.output, await call(req.message, implContext(req)))) }) as AnyResponse;
      break;
    default:
      throw new ConnectError(`${method.methodKind} calls are not served here`, Code.Unimplemented);
  }
  const chain = interceptors.reduceRight<ReturnType<Interceptor>>((next, interceptor) => interceptor(next), innermost);
  return chain(request);
}

/** Download chunks are joined into messages of about this size (the HTTP/2 frames do not care; each message costs the client a little). */
const JOINED_CHUNK_BYTES = 256 * 1024;

/**
 * Sends the response messages; the headers go with the first, so the implementation may still set
 * them. Consecutive download chunks are joined, without copying, into one message of up to
 * JOINED_CHUNK_BYTES (bounded by the message limit): the handler hands over reads as they come.
 */
async function writeResponse(writer: ResponseWriter, schema: DescMessage, res: AnyResponse, writeMaxBytes: number): Promise<void> {
  const write = async (pieces: Uint8Array[]) => {
    if (!writer.started) writer.sendHeaders(toNodeHeaders(res.header));
    await writer.write(pieces);
  };
  if (!res.stream) return write(encodeEnvelope(schema, normalize(schema, res.message), writeMaxBytes));
  const joinLimit = Math.min(JOINED_CHUNK_BYTES, writeMaxBytes - BYTES_FIELD_OVERHEAD);
  let joined: { field: number; pieces: Uint8Array[]; bytes: number } | undefined;
  const flush = async () => {
    if (!joined) return;
    const { field, pieces, bytes } = joined;
    joined = undefined;
    await write(encodeBytesField(field, pieces, bytes, writeMaxBytes));
  };
  for await (const message of res.message) {
    const bulk = bulkBytesOf(schema, message);
    if (bulk && joined && joined.field === bulk.field && joined.bytes + bulk.bytes.byteLength <= joinLimit) {
      joined.pieces.push(bulk.bytes);
      joined.bytes += bulk.bytes.byteLength;
    } else {
      await flush();
      if (bulk) joined = { field: bulk.field, pieces: [bulk.bytes], bytes: bulk.bytes.byteLength };
      else await write(encodeEnvelope(schema, normalize(schema, message), writeMaxBytes));
    }
    if (joined && joined.bytes >= joinLimit) await flush();
  }
  await flush();
  if (!writer.started) writer.sendHeaders(toNodeHeaders(res.header));
}

/**
 * The status to end a failed call with. Once its deadline has passed, a call ends
 * DEADLINE_EXCEEDED, whatever the implementation threw on seeing its signal abort.
 */
function callError(err: unknown, context: HandlerContext): ConnectError {
  const reason: unknown = context.signal.aborted ? context.signal.reason : undefined;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) return reason;
  return err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
}

function normalize(schema: DescMessage, message: unknown) {
  return isMessage(message, schema) ? message : create(schema, message as never);
}

async function* once<T>(value: T): AsyncGenerator<T> {
  yield value;
}

async function single<T>(messages: AsyncIterable<T>): Promise<T> {
  for await (const message of messages) return message;
  throw new ConnectError("protocol error: missing input message", Code.Unimplemented);
}

/**
 * The request's compression. Responses are never compressed (file bytes rarely shrink), so
 * grpc-accept-encoding does not matter; an encoding the server lacks is UNIMPLEMENTED, naming
 * the ones it has, as gRPC's compression spec asks.
 */
function requestCompression(requested: string | null, available: readonly Decompressor[]): { decompressor: Decompressor | null; error?: ConnectError } {
  if (requested === null || requested === "identity") return { decompressor: null };
  const found = available.find((c) => c.name === requested);
  if (found) return { decompressor: found };
  const acceptable = available.map((c) => c.name).join(",");
  return {
    decompressor: null,
    error: new ConnectError(`unknown compression "${requested}": supported encodings are ${acceptable}`, Code.Unimplemented, { "grpc-accept-encoding": acceptable }),
  };
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

function toNodeHeaders(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, key) => (out[key] = value));
  return out;
}
