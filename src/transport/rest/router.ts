import type { Logger } from "pino";
import { AuthenticationError, identifyCaller, type Authenticator } from "../../auth/authenticator.js";
import { peerPrincipalOf } from "../tls/peer-principal.js";
import type { FilesService } from "../../files/files-service.js";
import type { User } from "../../files/access-policy.js";
import type { Principal } from "../../files/ports.js";
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
  /** Unset: authentication is off. */
  authenticator?: Authenticator;
  logger: Logger;
  metrics?: RequestSink;
}

/** One request, matched to a route and authenticated. */
interface Call {
  req: HttpRequest;
  res: HttpResponse;
  /** The `{id}` segment, decoded; empty when the route has none. */
  id: string;
  url: URL;
  deps: RestDeps;
  /** The caller; null when authentication is off. */
  principal: Principal;
}

type Handler = (call: Call) => Promise<void>;

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
    GET: (c) => listFiles(c.res, c.url, c.deps.files, c.principal),
    POST: (c) => createFile(c.req, c.res, c.deps.files, c.principal),
  }),
  route("/v1/files/{id}", {
    GET: (c) => retrieveFile(c.res, c.id, c.deps.files, c.principal),
    DELETE: (c) => deleteFile(c.res, c.id, c.deps.files, c.principal),
  }),
  route("/v1/files/{id}/content", {
    GET: (c) => fileContent(c.req, c.res, c.id, c.deps.files, c.principal),
    HEAD: (c) => fileContent(c.req, c.res, c.id, c.deps.files, c.principal),
  }),
  route("/v1/uploads", { POST: (c) => createUpload(c.req, c.res, c.deps.uploads, c.principal) }),
  route("/v1/uploads/{id}", { GET: (c) => retrieveUpload(c.res, c.id, c.deps.uploads, c.principal) }),
  route("/v1/uploads/{id}/parts", { POST: (c) => addUploadPart(c.req, c.res, c.id, c.deps.uploads, c.principal) }),
  route("/v1/uploads/{id}/complete", { POST: (c) => completeUpload(c.req, c.res, c.id, c.deps.uploads, c.principal) }),
  route("/v1/uploads/{id}/cancel", { POST: (c) => cancelUpload(c.res, c.id, c.deps.uploads, c.principal) }),
];

/**
 * The OpenAI Files and Uploads REST API, mapped onto the same core the gRPC handlers call.
 * Resolves false when no route matches the path, so the caller can try its own.
 */
export async function serveRest(req: HttpRequest, res: HttpResponse, deps: RestDeps): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).find((x) => x.m);
  if (!match) return false;
  const observed = observeRequest(req, res, match.r.path, deps.logger, deps.metrics);
  try {
    const principal = await authenticate(req, res, deps.authenticator, url);
    observed.principal = principal?.principal ?? null;
    const methods = Object.keys(match.r.methods);
    const handler = match.r.methods[req.method ?? ""];
    if (!handler) {
      res.setHeader("allow", methods.join(", "));
      throw new RestError(405, `${req.method} is not allowed on ${match.r.path}; use ${methods.join(" or ")}`);
    }
    await handler({ req, res, id: decodeId(match.m![1]), url, deps, principal });
  } catch (err) {
    sendError(req, res, err, deps.logger);
  }
  return true;
}

/** Every REST route needs a token once authentication is on; the answer to a bad one is OpenAI's 401. */
async function authenticate(req: HttpRequest, res: HttpResponse, authenticator: Authenticator | undefined, url: URL): Promise<User | null> {
  if (!authenticator) return null;
  const params: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) (params[name] ??= []).push(value);
  try {
    return await identifyCaller(authenticator, req.headers.authorization, peerPrincipalOf(req.socket), {
      method: req.method ?? "",
      path: url.pathname,
      params,
    });
  } catch (err) {
    if (!(err instanceof AuthenticationError)) throw err;
    res.setHeader("www-authenticate", 'Bearer realm="files"');
    throw new RestError(401, err.message, null, "invalid_api_key");
  }
}

function decodeId(raw: string | undefined): string {
  if (raw === undefined) return "";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // not valid percent-encoding: the core will not recognise it either
  }
}
