import type { Principal } from "../../files/ports.js";
import type { UploadsService } from "../../files/uploads-service.js";
import { RestError } from "./errors.js";
import { parseExpiresAfter } from "./files-routes.js";
import { clientGone, readJsonObject, sendJson, type HttpRequest, type HttpResponse } from "./http-io.js";
import { parseMultipart } from "./multipart-form.js";
import { uploadJson, uploadPartJson } from "./openai-json.js";

/** POST /v1/uploads {filename, purpose, bytes, mime_type, expires_after?} */
export async function createUpload(req: HttpRequest, res: HttpResponse, uploads: UploadsService, owner: Principal): Promise<void> {
  const body = await readJsonObject(req);
  const view = await uploads.create({
    owner,
    filename: requiredString(body, "filename"),
    purpose: requiredString(body, "purpose"),
    bytes: requiredInteger(body, "bytes"),
    mimeType: optionalString(body, "mime_type"),
    expiresAfterSeconds: expiresAfter(body.expires_after),
  });
  sendJson(res, 200, uploadJson(view));
}

/** POST /v1/uploads/{id}/parts: one part in the multipart field `data`, streamed to storage. */
export async function addUploadPart(
  req: HttpRequest,
  res: HttpResponse,
  id: string,
  uploads: UploadsService,
  owner: Principal,
): Promise<void> {
  const signal = clientGone(res);
  const { file: part } = await parseMultipart(req, {
    fileField: "data",
    onFile: ({ stream }) => uploads.addPart(id, stream, { signal, owner }),
  });
  if (!part) throw new RestError(400, "The form has no 'data' part", "data");
  sendJson(res, 200, uploadPartJson(part));
}

/** POST /v1/uploads/{id}/complete {part_ids, md5?} */
export async function completeUpload(
  req: HttpRequest,
  res: HttpResponse,
  id: string,
  uploads: UploadsService,
  owner: Principal,
): Promise<void> {
  const body = await readJsonObject(req);
  const partIds = body.part_ids;
  if (!Array.isArray(partIds) || !partIds.every((p) => typeof p === "string")) {
    throw new RestError(400, "part_ids must be an array of part ids", "part_ids");
  }
  const view = await uploads.complete(id, partIds as string[], { md5: optionalString(body, "md5"), owner });
  sendJson(res, 200, uploadJson(view));
}

export async function cancelUpload(res: HttpResponse, id: string, uploads: UploadsService, owner: Principal): Promise<void> {
  sendJson(res, 200, uploadJson(await uploads.cancel(id, owner)));
}

export async function retrieveUpload(res: HttpResponse, id: string, uploads: UploadsService, owner: Principal): Promise<void> {
  sendJson(res, 200, uploadJson(await uploads.get(id, owner)));
}

function requiredString(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (value === undefined || value === null) throw new RestError(400, `${name} is required`, name);
  if (typeof value !== "string") throw new RestError(400, `${name} must be a string`, name);
  return value;
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw new RestError(400, `${name} must be a string`, name);
  return value;
}

function requiredInteger(body: Record<string, unknown>, name: string): number {
  const value = body[name];
  if (value === undefined || value === null) throw new RestError(400, `${name} is required`, name);
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw new RestError(400, `${name} must be an integer`, name);
  return value;
}

function expiresAfter(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new RestError(400, "expires_after must be an object {anchor, seconds}", "expires_after");
  }
  const { anchor, seconds } = value as Record<string, unknown>;
  return parseExpiresAfter(anchor, seconds);
}
