/**
 * The Files client in browsers: the Connect protocol (binary) with connect-web, to the page's
 * origin by default. Browsers cannot stream a request body, so every upload goes in parts
 * (Blob slices, a few in flight); downloads stream and resume. WebCrypto has no incremental
 * SHA-256, so downloads are not verified here unless `sha256` is given.
 */
import type { Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FilesClient, type FilesClientOptions } from "./files-client.js";

export interface WebConnectOptions extends Omit<FilesClientOptions, "streamingUploads"> {
  /** Default: the page's origin. */
  baseUrl?: string;
  /** The bearer token, read at each call (so a page can change it). */
  token?: string | (() => string | undefined);
  interceptors?: Interceptor[];
}

export function connectWeb(options: WebConnectOptions = {}): FilesClient {
  const token = typeof options.token === "function" ? options.token : () => options.token as string | undefined;
  const authorize: Interceptor = (next) => (req) => {
    const value = token()?.trim();
    if (value) req.header.set("authorization", `Bearer ${value}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: options.baseUrl ?? pageOrigin(),
    useBinaryFormat: true,
    interceptors: [authorize, ...(options.interceptors ?? [])],
  });
  // Three parts in flight: enough to overlap requests, few enough to bound a tab's memory.
  return new FilesClient(transport, { partConcurrency: 3, ...options, streamingUploads: false });
}

/** The page's origin; typed without the DOM library, so this module also type-checks for Node. */
function pageOrigin(): string {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (!origin) throw new TypeError("connectWeb: no page origin here; pass baseUrl");
  return origin;
}

// One import for browser users: the client, its errors and types.
export * from "./index.js";
