/**
 * The Files client in Node: gRPC over HTTP/2 with connect-node, with the windows and message
 * limits large transfers need, TLS and mutual TLS, a bearer token, and path helpers.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { CallOptions, Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { File } from "../../../gen/ts/files/v1/files_pb.js";
import { REQUEST_ID_HEADER } from "./errors.js";
import { downloadStream, type DownloadCall } from "./grpc-download.js";
import { addUploadPartCall } from "./grpc-upload-part.js";
import { FilesClient, type DownloadOptions, type FilesClientOptions, type UploadOptions } from "./files-client.js";

const MiB = 1024 * 1024;
/** 16 MiB windows: Node's 64 KiB defaults make each chunk wait for a WINDOW_UPDATE round trip. */
const WINDOW_BYTES = 16 * MiB;
/**
 * nghttp2's memory bound per session, in MB (Node's default 10): parts in flight wait in the
 * session for flow control, and past the bound new streams fail with ENHANCE_YOUR_CALM.
 */
const SESSION_MEMORY_MB = 64;
/** The service's largest message (max_message_bytes' ceiling is 64 MiB; parts are at most this). */
const MAX_MESSAGE_BYTES = 64 * MiB;

export interface ConnectOptions extends FilesClientOptions {
  /** http://host:port, or https://host:port for TLS. */
  url: string;
  /** An API key or JWT, sent as `authorization: Bearer ...`. */
  token?: string;
  /** PEM: the CA to trust instead of the system's (https only). */
  ca?: string | Buffer;
  /** PEM: a client certificate and its key, for mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /**
   * More interceptors, run after the client's own (token, request id), on every call but
   * downloads, which go straight on node:http2 (grpc-download.ts) to stream in bounded memory.
   * Without interceptors, upload parts go straight on node:http2 too (grpc-upload-part.ts), each
   * written as it is; with them, parts go through connect-es so that the interceptors see them.
   */
  interceptors?: Interceptor[];
}

/** Raises the connection-level window too, which connect-node leaves at Node's default. */
class WideWindowSessionManager extends Http2SessionManager {
  override async request(...args: Parameters<Http2SessionManager["request"]>): ReturnType<Http2SessionManager["request"]> {
    const stream = await super.request(...args);
    stream.session?.setLocalWindowSize(WINDOW_BYTES);
    return stream;
  }
}

export class NodeFilesClient extends FilesClient {
  /**
   * Uploads the file at `path`, streamed from disk (never read whole); its size is declared, and
   * large files go in parallel parts. filename defaults to the path's base name.
   */
  async uploadFile(path: string, options: Omit<UploadOptions, "filename" | "size"> & { filename?: string }): Promise<File> {
    const info = await stat(path);
    if (!info.isFile()) throw new TypeError(`${path} is not a regular file`);
    const source = createReadStream(path, { highWaterMark: MiB });
    try {
      return await this.upload(source, { ...options, filename: options.filename ?? basename(path), size: info.size });
    } finally {
      source.destroy();
    }
  }

  /**
   * Downloads into `path` through a temp file in the same directory, renamed over `path` once
   * every byte is written (and, for a whole file, verified): a failed download leaves nothing.
   */
  async downloadFile(fileId: string, path: string, options: DownloadOptions = {}): Promise<File> {
    const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.part`);
    const handle = await open(temp, "wx");
    try {
      const file = await this.download(fileId, async (chunk) => void (await handle.write(chunk)), options);
      await handle.sync();
      await handle.close();
      await rename(temp, path);
      return file;
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(temp, { force: true });
      throw err;
    }
  }
}

/** A client on one HTTP/2 connection of its own; close() ends it. */
export function connect(options: ConnectOptions): NodeFilesClient {
  const url = new URL(options.url);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new TypeError(`url must be http:// or https://, not ${options.url}`);
  const secure = url.protocol === "https:";
  if (!secure && (options.ca || options.cert || options.key)) throw new TypeError("ca, cert and key need an https:// url");
  if (!!options.cert !== !!options.key) throw new TypeError("a client certificate needs both cert and key");
  const tls = secure ? Object.fromEntries(Object.entries({ ca: options.ca, cert: options.cert, key: options.key }).filter(([, v]) => v !== undefined)) : {};
  const sessionManager = new WideWindowSessionManager(options.url, undefined, { settings: { initialWindowSize: WINDOW_BYTES }, maxSessionMemory: SESSION_MEMORY_MB, ...tls });
  const interceptors: Interceptor[] = [
    // Our own request id on every call, so an error names it even when the service's answer cannot.
    (next) => (req) => {
      if (!req.header.has(REQUEST_ID_HEADER)) req.header.set(REQUEST_ID_HEADER, randomUUID());
      if (options.token) req.header.set("authorization", `Bearer ${options.token}`);
      return next(req);
    },
    ...(options.interceptors ?? []),
  ];
  const transport = createGrpcTransport({
    baseUrl: options.url,
    sessionManager,
    interceptors,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  const rawHeaders = () => ({ [REQUEST_ID_HEADER]: randomUUID(), ...(options.token && { authorization: `Bearer ${options.token}` }) });
  const downloads = (call: DownloadCall, signal?: AbortSignal) => downloadStream(sessionManager, call, rawHeaders(), MAX_MESSAGE_BYTES, signal);
  const addUploadPart = (request: { uploadId: string; data: Uint8Array }, callOptions: CallOptions) =>
    addUploadPartCall(sessionManager, request, rawHeaders(), MAX_MESSAGE_BYTES, { signal: callOptions.signal, timeoutMs: callOptions.timeoutMs });
  const sha256 = () => {
    const h = createHash("sha256");
    return { update: (b: Uint8Array) => void h.update(b), digest: () => h.digest("hex") };
  };
  // One call per download: this road holds one message at a time, however large the file.
  return new NodeFilesClient(transport, { sha256, downloadStream: downloads, downloadWindowBytes: Infinity, ...(!options.interceptors?.length && { addUploadPart }), ...options }, () => sessionManager.abort());
}

// One import for Node users: the client, its errors and types.
export * from "./index.js";
