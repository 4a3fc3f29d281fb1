import type { Logger } from "pino";
import type { FilesService } from "../../files/files-service.js";
import type { UploadsService } from "../../files/uploads-service.js";
import { RestError } from "./errors.js";
import { createFile, deleteFile, fileContent, listFiles, retrieveFile } from "./files-routes.js";
import { sendError, type HttpRequest, type HttpResponse } from "./http-io.js";
import { addUploadPart, cancelUpload, completeUpload, createUpload, retrieveUpload } from "./uploads-routes.js";

export interface RestDeps {
  files: FilesService;
  uploads: UploadsService;
  logger: Logger;
}

type Handler = (req: HttpRequest, res: HttpResponse, id: string, url: URL, deps: RestDeps) => Promise<void>;

interface Route {
  pattern: RegExp;
  methods: Record<string, Handler>;
}

// One path segment; ids are decoded and then checked by the core, which answers 404 for any
// malformed one, so an id shaped like a path never reaches storage.
const ID = "([^/]+)";

const ROUTES: Route[] = [
  {
    pattern: /^\/v1\/files$/,
    methods: {
      GET: (_req, res, _id, url, d) => listFiles(res, url, d.files),
      POST: (req, res, _id, _url, d) => createFile(req, res, d.files),
    },
  },
  {
    pattern: new RegExp(`^/v1/files/${ID}$`),
    methods: {
      GET: (_req, res, id, _url, d) => retrieveFile(res, id, d.files),
      DELETE: (_req, res, id, _url, d) => deleteFile(res, id, d.files),
    },
  },
  {
    pattern: new RegExp(`^/v1/files/${ID}/content$`),
    methods: {
      GET: (req, res, id, _url, d) => fileContent(req, res, id, d.files),
      HEAD: (req, res, id, _url, d) => fileContent(req, res, id, d.files),
    },
  },
  { pattern: /^\/v1\/uploads$/, methods: { POST: (req, res, _id, _url, d) => createUpload(req, res, d.uploads) } },
  { pattern: new RegExp(`^/v1/uploads/${ID}$`), methods: { GET: (_req, res, id, _url, d) => retrieveUpload(res, id, d.uploads) } },
  { pattern: new RegExp(`^/v1/uploads/${ID}/parts$`), methods: { POST: (req, res, id, _url, d) => addUploadPart(req, res, id, d.uploads) } },
  { pattern: new RegExp(`^/v1/uploads/${ID}/complete$`), methods: { POST: (req, res, id, _url, d) => completeUpload(req, res, id, d.uploads) } },
  { pattern: new RegExp(`^/v1/uploads/${ID}/cancel$`), methods: { POST: (_req, res, id, _url, d) => cancelUpload(res, id, d.uploads) } },
];

/**
 * The OpenAI Files and Uploads REST API, mapped onto the same core the gRPC handlers call.
 * Resolves false when no route matches the path, so the caller can try its own.
 */
export async function serveRest(req: HttpRequest, res: HttpResponse, deps: RestDeps): Promise<boolean> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const route = ROUTES.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).find((x) => x.m);
  if (!route) return false;
  try {
    const handler = route.r.methods[req.method ?? ""];
    if (!handler) {
      res.setHeader("allow", Object.keys(route.r.methods).join(", "));
      throw new RestError(405, `${req.method} is not allowed on ${url.pathname}; use ${Object.keys(route.r.methods).join(" or ")}`);
    }
    await handler(req, res, decodeId(route.m![1]), url, deps);
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
