import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeGrpcMessage } from "../grpc-message-encoding.js";
import { serveGrpcCall, type CallOptions, type MethodImpl } from "./grpc-call.js";
import { ResponseWriter } from "./response-writer.js";

/** Takes an HTTP/2 stream and returns true, or returns false to leave it to the next handler. */
export type Http2StreamHandler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean;

export interface GrpcServiceImpl {
  service: DescService;
  /** Implementations by method local name, as in connect-es's ServiceImpl. */
  impl: Record<string, unknown>;
}

/** gRPC's binary content types; JSON over gRPC and gRPC-Web are left to connect-es. */
const GRPC_PROTO = /^application\/grpc(\+proto)?$/i;

/**
 * Claims the HTTP/2 streams that are gRPC calls to the given services and serves them on
 * node:http2's stream API (serveGrpcCall). Anything else, including other services (health,
 * reflection) and other protocols, is left for connect-es.
 */
export function grpcStreamRouter(
  services: GrpcServiceImpl[],
  settings: Omit<CallOptions, "acceptEncoding">,
  onUnexpected: (err: unknown) => void,
): Http2StreamHandler {
  const options: CallOptions = { ...settings, acceptEncoding: settings.acceptCompression.map((c) => c.name).join(",") };
  const methods = new Map<string, { method: DescMethod; impl: MethodImpl | undefined }>();
  const prefixes: string[] = [];
  for (const { service, impl } of services) {
    prefixes.push(`/${service.typeName}/`);
    for (const method of service.methods) {
      methods.set(`/${service.typeName}/${method.name}`, { method, impl: impl[method.localName] as MethodImpl | undefined });
    }
  }
  return (stream, headers) => {
    const path = headers[":path"];
    if (headers[":method"] !== "POST" || typeof path !== "string" || !prefixes.some((p) => path.startsWith(p))) return false;
    const contentType = headers["content-type"];
    if (typeof contentType !== "string" || !GRPC_PROTO.test(contentType)) return false;
    // Cancellation is seen through "close"; without a listener, a client's RST_STREAM would
    // surface as an uncaught stream error.
    stream.on("error", () => {});
    const route = methods.get(path);
    if (!route) {
      answerUnknownMethod(stream, path);
      return true;
    }
    serveGrpcCall(stream, headers, route.method, route.impl ?? unimplemented(path), options).catch((err: unknown) => {
      onUnexpected(err);
      stream.close();
    });
    return true;
  };
}

/** A method the service does not have: UNIMPLEMENTED, trailers-only, and the request is not read. */
function answerUnknownMethod(stream: ServerHttp2Stream, path: string): void {
  stream.resume();
  new ResponseWriter(stream, AbortSignal.abort()).trailersOnly({
    "content-type": "application/grpc+proto",
    "grpc-status": String(Code.Unimplemented),
    "grpc-message": encodeGrpcMessage(`unknown method ${path}`),
  });
}

function unimplemented(path: string): MethodImpl {
  return () => {
    throw new ConnectError(`${path.slice(1).replace("/", ".")} is not implemented`, Code.Unimplemented);
  };
}
