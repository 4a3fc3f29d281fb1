import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { HttpRequest, HttpResponse } from "./rest/http-io.js";

interface Asset {
  file: string;
  type: string;
}

/**
 * The only paths served, each mapped to a fixed file name in the bundle: no file path is ever
 * built from the URL, so `..`, encoded slashes or unknown names cannot reach the disk.
 */
const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/index.html", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/main.js", { file: "main.js", type: "text/javascript; charset=utf-8" }],
  ["/main.js.map", { file: "main.js.map", type: "application/json; charset=utf-8" }],
  ["/styles.css", { file: "styles.css", type: "text/css; charset=utf-8" }],
  ["/favicon.svg", { file: "favicon.svg", type: "image/svg+xml" }],
]);

/** Only the page's own origin, for scripts, styles, images and the RPCs alike; nothing inline. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'";

/** `dist/web` of the package this module belongs to, whether it runs from `dist/src` or `src`. */
export function defaultWebRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) return join(import.meta.dirname, "web"); // no package root: nothing will be found
    dir = parent;
  }
  return join(dir, "dist", "web");
}

/**
 * Serves the browser client built into `root` (see scripts/build-web.mjs). Resolves false for any
 * path that is not one of its assets, so the caller can route it elsewhere.
 */
export function webAssets(root: string = defaultWebRoot()): (req: HttpRequest, res: HttpResponse) => Promise<boolean> {
  return async (req, res) => {
    // The raw path, not a normalised one: "/./main.js" or "//main.js" are not asset names either.
    const asset = ASSETS.get((req.url ?? "/").split("?")[0] ?? "/");
    if (!asset) return false;
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader("content-security-policy", CONTENT_SECURITY_POLICY);
    res.setHeader("referrer-policy", "no-referrer");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendText(res, 405, `${req.method} is not allowed here; use GET or HEAD`);
      return true;
    }
    let body: Buffer;
    try {
      body = await readFile(join(root, asset.file));
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
      if (missing) sendText(res, 404, `The browser client is not built: run \`npm run build\` (it bundles src/web into ${root}).`);
      else sendText(res, 500, `The browser client could not be read: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
      return true;
    }
    // Fixed names, so a cached copy must be revalidated; the ETag makes that a cheap 304.
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    res.setHeader("cache-control", "no-cache");
    res.setHeader("etag", etag);
    if (req.headers["if-none-match"] === etag) {
      res.statusCode = 304;
      res.end();
      return true;
    }
    res.statusCode = 200;
    res.setHeader("content-type", asset.type);
    res.setHeader("content-length", body.byteLength);
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  };
}

function sendText(res: HttpResponse, status: number, text: string): void {
  res.statusCode = status;
  res.setHeader("cache-control", "no-store");
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}
