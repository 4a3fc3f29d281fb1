import type { Logger } from "pino";
import type { FilesService } from "../../files/files-service.js";
import type { UploadsService } from "../../files/uploads-service.js";
import type { RequestSink } from "../../observability/sinks.js";
import { RestError } from "./errors.js";
import { createFile, deleteFile, fileContent, listFiles, retrieveFile } from "./files-routes.js";
import { sendError, type HttpRequest, type HttpResponse } from "./http-io.js";
import { observeRequest } from "./request-observer.js";
import { addUploadPart, cancelUpload, completeUpload, createUpload, retrieveUpload } from "./uploads-routes.js";

export interface RestDeps {
  files: FilesService;
  uploads: UploadsService;
  logger: Logger;
  metrics?: RequestSink;
}

type Handler = (req: HttpRequest, res: HttpResponse, id: string, url: URL, deps: RestDeps) => Promise<void>;

interface Route {
  /** The path template; `{id}` is one segment. */
  path: string;
  pattern: RegExp;
  methods: Record<string, Handler>;
}

// `{id}` is one path segment, decoded and then checked by the core, which answers 404 for any
// malformed id, so an id shaped like a path never reaches storage.
function route(path: string, methods: Record<string, Handler>): Route {
  return { path, pattern: new RegExp(`^${path.replace("{id}", "([^/]+)")}$`), methods };
}

const ROUTES: Route[] = [
  route("/v1/files", {
    GET: (_req, res, _id, url, d) => listFiles(res, url, d.files),
    POST: (req, res, _id, _url, d) => createFile(req, res, d.files),
  }),
  route("/v1/files/{id}", {
    GET: (_req, res, id, _url, d) => retrieveFile(res, id, d.files),
    DELETE: (_req, res, id, _url, d) => deleteFile(res, id, d.files),
  }),
  route("/v1/files/{id}/content", {
    GET: (req, res, id, _url, d) => fileContent(req, res, id, d.files),
    HEAD: (req, res, id, _url, d) => fileContent(req, res, id, d.files),
  }),
  route("/v1/uploads", { POST: (req, res, _id, _url, d) => createUpload(req, res, d.uploads) }),
  route("/v1/uploads/{id}", { GET: (_req, res, id, _url, d) => retrieveUpload(res, id, d.uploads) }),
  route("/v1/uploads/{id}/parts", { POST: (req, res, id, _url, d) => addUploadPart(req, res, id, d.uploads) }),
  route("/v1/uploads/{id}/complete", { POST: (req, res, id, _url, d) => completeUpload(req, res, id, d.uploads) }),
  route("/v1/uploads/{id}/cancel", { POST: (_req, res, id, _url, d) => cancelUpload(res, id, d.uploads) }),
];

/**
 * The OpenAI Files and Uploads REST API, mapped onto the same core the gRPC handlers call.
 * Resolves false when no route matches the path, so the caller can try its own.
 */
export async function serveRest(req: HttpRequest, res: HttpResponse, deps: RestDeps): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).find((x) => x.m);
  if (!match) return false;
  observeRequest(req, res, match.r.path, deps.logger, deps.metrics);
  try {
    const methods = Object.keys(match.r.methods);
    const handler = match.r.methods[req.method ?? ""];
    if (!handler) {
      res.setHeader("allow", methods.join(", "));
      throw new RestError(405, `${req.method} is not allowed on ${match.r.path}; use ${methods.join(" or ")}`);
    }
    await handler(req, res, decodeId(match.m![1]), url, deps);
  } catch (err) {
    sendError(req, res, err, deps.logger);
  }
  return true;
}

function decodeId(raw: string | undefined): string {
  if (raw === undefined) return "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // not valid percent-encoding: the core will not recognise it either
  }
}
