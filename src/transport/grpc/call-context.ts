import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import { JOINS_DOWNLOAD_CHUNKS } from "../connect/download-chunks.js";
import { withCertificatePrincipal } from "../connect/principal.js";

/** The error for a call whose client reset its stream or went away. */
export const clientCancelled = () => new ConnectError("the client cancelled the call", Code.Canceled);

/** The one reason a finished call's signal is aborted with (built once: an abort without a reason makes a DOMException, stack and all, per call). */
const CALL_ENDED = new ConnectError("the call has ended", Code.Canceled);

export interface CallContext {
  readonly context: HandlerContext;
  /** Ends the call's life: clears its deadline, stops watching its stream, and aborts its signal for anything still listening. */
  dispose(): void;
}

/**
 * The HandlerContext the interceptors and implementations get, as connect-es builds it, with one
 * AbortController for everything that ends a call: the client resetting the stream, the deadline
 * (grpc-timeout), and the call ending.
 */
export function createCallContext(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  method: DescMethod,
  timeoutMs: number | undefined,
  /** The request compressions accepted, advertised on every response as gRPC's compression spec describes. */
  acceptEncoding: string,
): CallContext {
  const controller = new AbortController();
  const onClose = () => controller.abort(clientCancelled());
  stream.once("close", onClose);
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  const timer =
    timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  const context: HandlerContext = {
    method,
    service: method.parent,
    signal: controller.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    requestMethod: "POST",
    requestHeader: requestHeaders(headers),
    responseHeader: new Headers({ "content-type": "application/grpc+proto", "grpc-accept-encoding": acceptEncoding }),
    responseTrailer: new Headers({ "grpc-status": "0" }),
    protocolName: "grpc",
    values: withCertificatePrincipal(createContextValues().set(JOINS_DOWNLOAD_CHUNKS, true), stream.session?.socket),
    url: `${stream.session?.encrypted ? "https" : "http"}://${headers[":authority"] ?? "localhost"}${headers[":path"]}`,
  };
  return {
    context,
    dispose: () => {
      clearTimeout(timer);
      stream.off("close", onClose);
      controller.abort(CALL_ENDED);
    },
  };
}

/** The request's headers without HTTP/2 pseudo-headers, as connect-node gives them to interceptors. */
function requestHeaders(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const key in headers) {
    if (key.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else out.append(key, String(value));
  }
  return out;
}
