import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { HttpHandlers } from "./http-handler.js";
import { refusePlaintext } from "./tls/plaintext-refusal.js";
import { rememberPeerPrincipal, type PrincipalSource } from "./tls/peer-principal.js";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
// A larger HTTP/2 flow-control window lets a streaming upload keep the pipe full instead of
// waiting on WINDOW_UPDATEs every 64 KiB.
const H2_WINDOW_BYTES = 8 * 1024 * 1024;

export interface ConnectionLimits {
  /** Time for a connection's first bytes, and (HTTP/1.1) for a request's whole head. */
  headerTimeoutMs: number;
  /** An HTTP/1.1 connection, or an HTTP/2 stream or session, with no traffic for this long is closed. */
  idleTimeoutMs: number;
}

const DEFAULT_LIMITS: ConnectionLimits = { headerTimeoutMs: 30_000, idleTimeoutMs: 600_000 };

/** TLS on the port: every connection must handshake; ALPN picks HTTP/2 or HTTP/1.1. */
export interface TlsListenOptions {
  /** Certificate, key, client CA and minimum version; replaced for new connections by setSecureContext. */
  context: tls.SecureContextOptions;
  clientAuth: "none" | "optional" | "require";
  /** Which name of a verified client certificate becomes the connection's principal. */
  principalFrom?: PrincipalSource;
  /** A connection that did not get through the handshake, or spoke plaintext: for the log. */
  onClientError?: (err: Error, remoteAddress: string | undefined) => void;
}

export const TLS_REQUIRED_CODE = "ERR_FILES_TLS_REQUIRED";

export interface OnePortServer {
  listen(port: number, host: string): Promise<number>;
  /** Stops accepting connections; resolves when every open connection has closed. */
  close(): Promise<void>;
  /** Closes idle keep-alive connections and asks HTTP/2 peers to go away. */
  closeIdle(): void;
  /** Destroys every connection at once. */
  destroyAll(): void;
  /** TLS only: the certificate (and client CA) for connections from now on; open ones keep theirs. */
  setSecureContext(context: tls.SecureContextOptions): void;
}

/**
 * Serves HTTP/2 (gRPC, Connect) and HTTP/1.1 (gRPC-Web, Connect, REST) on one port.
 * Plaintext: each connection's first bytes are read, and the HTTP/2 client preface goes to the
 * http2 server, anything else to the http server (Node's allowHTTP1 works only with TLS).
 * TLS: a handshake record goes to a TLS server whose ALPN answer (h2 or http/1.1) picks the
 * server; plaintext gets a clear refusal (plaintext-refusal.ts) and is closed.
 */
export function createOnePortServer(
  handlers: HttpHandlers,
  limits: ConnectionLimits = DEFAULT_LIMITS,
  tlsOptions?: TlsListenOptions,
): OnePortServer {
  const { headerTimeoutMs, idleTimeoutMs } = limits;
  const handler = handlers.request;
  const h1 = http.createServer(
    {
      // No whole-request deadline: a large upload may rightly take hours. Stalls are what the
      // idle timeout catches, and slow request heads what the header timeout catches.
      requestTimeout: 0,
      headersTimeout: headerTimeoutMs,
      keepAliveTimeout: Math.min(65_000, idleTimeoutMs),
      // How often the header deadline is checked (Node's default is every 30 s).
      connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(headerTimeoutMs / 4))),
    },
    handler,
  );
  // Socket inactivity: Node destroys a connection idle this long (no 'timeout' listener on h1).
  h1.timeout = idleTimeoutMs;
  // h1 never listens itself (the net server does), but Node only starts tracking its connections,
  // which closeIdleConnections() and the header timeout rely on, on "listening".
  h1.emit("listening");
  const h2 = http2.createServer({ settings: { initialWindowSize: H2_WINDOW_BYTES } }, (req, res) => {
    discardUnreadBodyOnEnd(req, res);
    handler(req, res);
  });
  // A session with no traffic at all is destroyed (no 'timeout' listener on h2); a stream that
  // stalls while its session stays busy with others is cancelled on its own.
  h2.setTimeout(idleTimeoutMs);
  routeStreams(h2, (stream, headers) => {
    stream.setTimeout(idleTimeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    return handlers.grpcStream(stream, headers);
  });
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    session.once("connect", () => session.setLocalWindowSize(H2_WINDOW_BYTES));
  });

  const secure = tlsOptions && createTlsServer(tlsOptions, headerTimeoutMs, (socket) => (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket));

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Until it is routed, nothing else watches the connection: it must speak within the header timeout.
    socket.setTimeout(headerTimeoutMs, () => socket.destroy());
    routeByFirstBytes(socket, secure !== undefined, (kind) => {
      socket.setTimeout(0);
      if (kind === "tls") {
        // The handshake has its own deadline (handshakeTimeout), the header timeout.
        secure!.emit("connection", socket);
      } else if (secure) {
        tlsOptions!.onClientError?.(Object.assign(new Error(`a plaintext ${kind === "h2" ? "HTTP/2" : "HTTP/1.x"} connection to the TLS port was refused`), { code: TLS_REQUIRED_CODE }), socket.remoteAddress);
        refusePlaintext(socket, kind);
      } else {
        (kind === "h2" ? h2 : h1).emit("connection", socket);
      }
    });
  });

  return {
    listen: (port, host) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as net.AddressInfo).port);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
      }),
    closeIdle: () => {
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
    },
    destroyAll: () => {
      for (const socket of sockets) socket.destroy();
    },
    setSecureContext: (context) => {
      if (!secure) throw new Error("setSecureContext: this server speaks plaintext");
      secure.setSecureContext(context);
    },
  };
}

/** The handshake half of the TLS port; it never listens, the net server hands it connections. */
function createTlsServer(options: TlsListenOptions, handshakeTimeoutMs: number, onSecure: (socket: tls.TLSSocket) => void): tls.Server {
  const server = tls.createServer({
    ...options.context,
    ALPNProtocols: ["h2", "http/1.1"],
    requestCert: options.clientAuth !== "none",
    // "require": a missing or unverifiable client certificate fails the handshake itself.
    rejectUnauthorized: options.clientAuth === "require",
    handshakeTimeout: handshakeTimeoutMs,
  });
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    rememberPeerPrincipal(socket, options.principalFrom);
    onSecure(socket);
  });
  server.on("tlsClientError", (err, socket) => {
    // With client_auth "require", Node closes a connection whose certificate failed verification
    // as the handshake ends, and reports only a hang-up: the reason is on the socket.
    const refused = socket.authorizationError;
    const reported = refused
      ? Object.assign(new Error(`the client certificate was refused: ${String(refused)}`), { code: String((refused as { code?: string }).code ?? refused) })
      : err;
    options.onClientError?.(reported, socket.remoteAddress);
    socket.destroy();
  });
  return server;
}

/**
 * A handler may answer before reading the whole request (an error mid-upload, a message over
 * readMaxBytes). Node's http server then discards the unread body; http2 keeps it buffered, and a
 * stream with unread data is never destroyed: it holds its session, and so a graceful shutdown,
 * open until the client goes away. Once the response has ended, drop whatever was not read.
 */
function discardUnreadBodyOnEnd(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
  const end = res.end.bind(res) as (...args: unknown[]) => unknown;
  (res as { end: unknown }).end = (...args: unknown[]) => {
    const result = end(...args);
    if (!req.complete) req.resume();
    return result;
  };
}

/**
 * Gives each HTTP/2 stream to `claim` first; the streams it declines go on to the request
 * handler. Node's compatibility API (Http2ServerRequest/Response) is itself a "stream" listener,
 * installed with the request handler: it is taken off and called only for declined streams, so a
 * claimed stream costs no request and response objects.
 */
function routeStreams(h2: http2.Http2Server, claim: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean): void {
  const compat = h2.listeners("stream") as ((...args: unknown[]) => void)[];
  if (compat.length !== 1) throw new Error(`expected node:http2's one compatibility "stream" listener, found ${compat.length}`);
  h2.removeAllListeners("stream");
  h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    if (!claim(stream, headers)) compat[0]!.call(h2, stream, headers, ...rest);
  });
}

/** A TLS record of type handshake (a ClientHello) starts with this byte. */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Reads just enough of the connection to tell a TLS handshake (when `tlsPort`), HTTP/2's
 * preface or HTTP/1.x apart, then puts the bytes back.
 */
function routeByFirstBytes(socket: net.Socket, tlsPort: boolean, route: (kind: "tls" | "h2" | "h1") => void): void {
  let seen = Buffer.alloc(0);
  const onData = (data: Buffer) => {
    seen = Buffer.concat([seen, data]);
    let kind: "tls" | "h2" | "h1";
    if (tlsPort && seen[0] === TLS_HANDSHAKE_RECORD) {
      kind = "tls";
    } else {
      const n = Math.min(seen.length, H2_PREFACE.length);
      const matches = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (matches && n < H2_PREFACE.length) return; // a prefix of the preface so far: wait for more
      kind = matches ? "h2" : "h1";
    }
    socket.off("data", onData);
    socket.pause();
    socket.unshift(seen);
    route(kind);
    process.nextTick(() => socket.resume());
  };
  socket.on("data", onData);
  socket.on("error", () => socket.destroy());
}
