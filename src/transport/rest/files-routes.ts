import type { FilesService } from "../../files/files-service.js";
import type { Principal } from "../../files/ports.js";
import { contentRange, parseRange } from "./byte-range.js";
import { contentDisposition } from "./content-disposition.js";
import { RestError } from "./errors.js";
import { clientGone, sendBody, sendJson, type HttpRequest, type HttpResponse } from "./http-io.js";
import { parseMultipart, type FormFields } from "./multipart-form.js";
import { fileJson } from "./openai-json.js";

/** POST /v1/files: the form's file part streams into storage while the form is still being read. */
export async function createFile(req: HttpRequest, res: HttpResponse, files: FilesService, owner: Principal): Promise<void> {
  const signal = clientGone(res);
  const { file } = await parseMultipart(req, {
    fileField: "file",
    // `purpose` may come before or after `file`: the bytes go to a key no row points at,
    // and the row is written only once the whole form has arrived and is valid.
    onFile: ({ filename, mimeType, stream }, fieldsSoFar, allFields) =>
      files.uploadThenDescribe(
        { filename, mimeType, purpose: fieldsSoFar.get("purpose") },
        stream,
        async () => describe(await allFields),
        { signal, owner },
      ),
  });
  if (!file) throw new RestError(400, "The form has no 'file' part", "file");
  sendJson(res, 200, fileJson(file));
}

function describe(fields: FormFields) {
  return { purpose: fields.get("purpose") ?? "", expiresAfterSeconds: expiresAfter(fields) };
}

/** The SDKs send `expires_after` as the form fields expires_after[anchor] and expires_after[seconds]. */
function expiresAfter(fields: FormFields): number | undefined {
  const anchor = fields.get("expires_after[anchor]");
  const seconds = fields.get("expires_after[seconds]");
  if (anchor === undefined && seconds === undefined) return undefined;
  return parseExpiresAfter(anchor, seconds);
}

export function parseExpiresAfter(anchor: unknown, seconds: unknown): number {
  if (anchor !== "created_at") {
    throw new RestError(400, "expires_after.anchor must be 'created_at'", "expires_after.anchor");
  }
  const value = typeof seconds === "string" && /^\d{1,15}$/.test(seconds) ? Number(seconds) : seconds;
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new RestError(400, "expires_after.seconds must be an integer number of seconds", "expires_after.seconds");
  }
  return value; // its range is the core's to check
}

/** GET /v1/files: OpenAI's query parameters, checked here for syntax and by the core for meaning. */
export async function listFiles(res: HttpResponse, url: URL, files: FilesService, owner: Principal): Promise<void> {
  const query = url.searchParams;
  for (const name of ["after", "limit", "order", "purpose"]) {
    if (query.getAll(name).length > 1) throw new RestError(400, `The query parameter '${name}' was given more than once`, name);
  }
  const limitText = query.get("limit");
  let limit: number | undefined;
  if (limitText !== null) {
    if (!/^\d{1,6}$/.test(limitText)) throw new RestError(400, "limit must be an integer between 1 and 10000", "limit");
    limit = Number(limitText);
  }
  const order = query.get("order");
  if (order !== null && order !== "asc" && order !== "desc") {
    throw new RestError(400, `order must be 'asc' or 'desc', not '${order}'`, "order");
  }
  const page = await files.list({
    owner,
    after: query.get("after") || undefined,
    limit,
    order: order ?? undefined,
    purpose: query.get("purpose") || undefined,
  });
  sendJson(res, 200, {
    object: "list",
    data: page.data.map(fileJson),
    first_id: page.firstId,
    last_id: page.lastId,
    has_more: page.hasMore,
  });
}

export async function retrieveFile(res: HttpResponse, id: string, files: FilesService, owner: Principal): Promise<void> {
  sendJson(res, 200, fileJson(await files.get(id, owner)));
}

export async function deleteFile(res: HttpResponse, id: string, files: FilesService, owner: Principal): Promise<void> {
  const { deleted } = await files.delete(id, owner);
  sendJson(res, 200, { id, object: "file", deleted });
}

/**
 * GET and HEAD /v1/files/{id}/content: the bytes with the stored media type, a strong ETag (the
 * SHA-256), a safely encoded filename, and single byte ranges (206, or 416 when unsatisfiable).
 */
export async function fileContent(req: HttpRequest, res: HttpResponse, id: string, files: FilesService, owner: Principal): Promise<void> {
  const file = await files.get(id, owner);
  const etag = file.sha256 ? `"${file.sha256}"` : undefined;
  res.setHeader("content-type", file.mimeType);
  res.setHeader("content-disposition", contentDisposition(file.filename));
  res.setHeader("accept-ranges", "bytes");
  res.setHeader("last-modified", new Date(file.createdAt * 1000).toUTCString());
  if (etag) res.setHeader("etag", etag);

  if (etag && matchesEtag(req.headers["if-none-match"], etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  // If-Range: serve the range only if the client's copy is still the stored one.
  const ifRange = req.headers["if-range"];
  const range = ifRange !== undefined && ifRange !== etag ? { kind: "none" as const } : parseRange(req.headers.range, file.bytes);
  if (range.kind === "unsatisfiable") {
    res.setHeader("content-range", `bytes */${file.bytes}`);
    throw new RestError(416, `The range '${req.headers.range}' is outside the file (${file.bytes} bytes)`, "range");
  }
  const { offset, length } = range.kind === "range" ? range : { offset: 0, length: file.bytes };
  res.statusCode = range.kind === "range" ? 206 : 200;
  if (range.kind === "range") res.setHeader("content-range", contentRange(offset, length, file.bytes));
  res.setHeader("content-length", length);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  const download = await files.read(file, { offset, length }, clientGone(res));
  await sendBody(res, download.body);
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.trim() === "*" || header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
