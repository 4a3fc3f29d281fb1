import { createContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { FilesService as FilesServiceDesc } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesMetrics } from "../observability/metrics.js";
import type { FilesService } from "../files/files-service.js";
import type { UploadsService } from "../files/uploads-service.js";
import type { Authenticator } from "../auth/authenticator.js";
import { authInterceptor } from "./connect/auth-interceptor.js";
import { withCertificatePrincipal } from "./connect/principal.js";
import { errorInterceptor } from "./connect/error-interceptor.js";
import { filesHandlers } from "./connect/files-handlers.js";
import { registerHealth } from "./connect/health.js";
import { registerReflection } from "./connect/reflection.js";
import { uploadsHandlers } from "./connect/uploads-handlers.js";
import { observeInterceptor } from "./connect/observe-interceptor.js";
import { withSpecGrpcMessageEncoding } from "./grpc-message-encoding.js";
import { grpcStreamRouter, type Http2StreamHandler } from "./grpc/grpc-stream-router.js";
import { readyWithin } from "./readiness.js";
import { serveRest } from "./rest/router.js";
import { webAssets } from "./web-assets.js";

/** A handler for both node:http and node:http2 requests (connect-node does not export the name). */
export type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;
type Request = Parameters<NodeHandlerFn>[0];
type Response = Parameters<NodeHandlerFn>[1];

export interface HttpHandlerOptions {
  files: FilesService;
  uploads: UploadsService;
  logger: Logger;
  maxMessageBytes: number;
  /** Aborted when the server begins to shut down, to release long-lived streams (health watchers). */
  shutdown?: AbortSignal;
  /** Resolves when the service can do its work (storage and database reachable). */
  ready: () => Promise<void>;
  /** Request and transfer metrics, served at /metrics; unset: neither. */
  metrics?: FilesMetrics;
  /** Checks every call but health, metrics and the browser page's assets; unset: authentication is off. */
  authenticator?: Authenticator;
}

/** Both request handlers for the one port. */
export interface HttpHandlers {
  /** Every request, both HTTP versions: gRPC, gRPC-Web and Connect routes (connect-es), then the REST API and health routes. */
  request: NodeHandlerFn;
  /** gRPC calls to FilesService over HTTP/2, served on the stream API before the request handler sees them. */
  grpcStream: Http2StreamHandler;
}

export function createHttpHandlers(options: HttpHandlerOptions): HttpHandlers {
  const { logger } = options;
  const onUnexpected = (err: unknown) => logger.error({ err }, "a call failed on the server side");
  const filesImpl = { ...filesHandlers(options.files, options.maxMessageBytes), ...uploadsHandlers(options.uploads) };
  const interceptors = [
    observeInterceptor(logger, options.metrics),
    ...(options.authenticator ? [authInterceptor(options.authenticator)] : []),
    errorInterceptor(onUnexpected),
  ];
  const request = withSpecGrpcMessageEncoding(connectNodeAdapter({
    routes: (router) => {
      router.service(FilesServiceDesc, filesImpl);
      registerHealth(router, { ready: options.ready, services: [FilesServiceDesc.typeName], shutdown: options.shutdown });
      registerReflection(router); // last: it describes every service registered before it
    },
    interceptors,
    contextValues: (req) => withCertificatePrincipal(createContextValues(), req.socket),
    readMaxBytes: options.maxMessageBytes,
    // Compressed requests are still accepted, but responses are never compressed: file bytes are
    // usually incompressible, and gzipping every download chunk cut throughput by an order of magnitude.
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    writeMaxBytes: options.maxMessageBytes,
    fallback: (req, res) => void plainRoutes(req, res, options),
  }));
  const grpcStream = grpcStreamRouter(
    [{ service: FilesServiceDesc, impl: filesImpl }],
    {
      interceptors,
      readMaxBytes: options.maxMessageBytes,
      writeMaxBytes: options.maxMessageBytes,
      acceptCompression: [compressionGzip, compressionBrotli],
      streamedBytes: new Map([[FilesServiceDesc.method.addUploadPart, FilesServiceDesc.method.addUploadPart.input.field.data]]),
    },
    onUnexpected,
  );
  return { request, grpcStream };
}

/** The browser client's page and assets, from dist/web. */
const serveWebAssets = webAssets();

async function plainRoutes(req: Request, res: Response, options: HttpHandlerOptions): Promise<void> {
  if (await serveWebAssets(req, res)) return;
  if (await serveRest(req, res, options)) return;
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
  if (path === "/metrics" && options.metrics) {
    try {
      const text = await options.metrics.scrape();
      res.setHeader("content-type", options.metrics.contentType);
      return void res.end(text);
    } catch (err) {
      options.logger.error({ err }, "could not collect metrics");
      return sendJson(res, 500, { status: "error" });
    }
  }
  if (path === "/readyz") {
    try {
      await readyWithin(options.ready);
      return sendJson(res, 200, { status: "ready" });
    } catch (err) {
      options.logger.warn({ err }, "readiness check failed");
      return sendJson(res, 503, { status: "unavailable" });
    }
  }
  res.setHeader("x-should-retry", "false");
  return sendJson(res, 404, { error: { message: `No route for ${req.method} ${path}`, type: "invalid_request_error", param: null, code: null } });
}

function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}
