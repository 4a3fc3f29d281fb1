import http2 from "node:http2";
import type net from "node:net";

const MESSAGE = "This port requires TLS: connect with https:// (or a TLS-enabled gRPC channel)";
/** A refused connection is closed after this long, whatever the peer does. */
const REFUSAL_LINGER_MS = 5_000;

/**
 * A plaintext client on the TLS port gets an answer it can show, rather than a bare close:
 * HTTP/1.x an OpenAI-shaped 400 (as nginx answers plain HTTP on an HTTPS port); HTTP/2 an answer
 * to its first request (gRPC: UNAVAILABLE with the message; anything else the same 400), then
 * GOAWAY. A GOAWAY alone is not enough: grpc-go and curl do not show its debug text, and grpcio
 * retries a call that a GOAWAY refused until its deadline.
 */
export function refusePlaintext(socket: net.Socket, kind: "h1" | "h2"): void {
  setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
  if (kind === "h2") {
    refusalServer().emit("connection", socket);
    return;
  }
  socket.on("error", () => socket.destroy());
  socket.on("data", () => {}); // whatever else it sends is read and dropped
  socket.resume();
  const body = refusalBody();
  socket.end(
    Buffer.from(
      "HTTP/1.1 400 Bad Request\r\n" +
        "Content-Type: application/json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
      "latin1",
    ),
  );
}

function refusalBody(): string {
  return JSON.stringify({ error: { message: MESSAGE, type: "invalid_request_error", param: null, code: "tls_required" } });
}

let server: http2.Http2Server | undefined;

/** One small HTTP/2 server, shared by every refused connection: it answers each stream and goes away. */
function refusalServer(): http2.Http2Server {
  if (server) return server;
  server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.on("error", () => {});
    stream.resume(); // a request body is read and dropped
    const grpc = String(headers["content-type"] ?? "").startsWith("application/grpc");
    if (grpc) {
      stream.respond(
        { ":status": 200, "content-type": String(headers["content-type"]), "grpc-status": "14", "grpc-message": MESSAGE },
        { endStream: true },
      );
    } else {
      const body = refusalBody();
      stream.respond({ ":status": 400, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      stream.end(body);
    }
    stream.session?.close();
  });
  server.on("session", (session) => session.on("error", () => session.destroy()));
  return server;
}
