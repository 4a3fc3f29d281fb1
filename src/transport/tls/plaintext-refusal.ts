import type net from "node:net";

const MESSAGE = "This port requires TLS: connect with https:// (or a TLS-enabled gRPC channel)";

/**
 * A plaintext client on the TLS port gets an answer it can show, rather than a bare close:
 * HTTP/1.x an OpenAI-shaped 400 (as nginx answers plain HTTP on an HTTPS port), HTTP/2 a
 * GOAWAY whose debug data says why (grpc-go and curl print it). Then the connection closes.
 */
export function refusePlaintext(socket: net.Socket, kind: "h1" | "h2"): void {
  socket.on("error", () => socket.destroy());
  socket.on("data", () => {}); // whatever else it sends is read and dropped
  socket.resume();
  socket.end(kind === "h2" ? goAwayFrames() : http1Refusal());
  // A peer that never reads our answer must not hold the socket.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

function http1Refusal(): Buffer {
  const body = JSON.stringify({ error: { message: MESSAGE, type: "invalid_request_error", param: null, code: "tls_required" } });
  return Buffer.from(
    "HTTP/1.1 400 Bad Request\r\n" +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
    "latin1",
  );
}

/** The server's empty SETTINGS (its connection preface), then GOAWAY(PROTOCOL_ERROR) with the message. */
function goAwayFrames(): Buffer {
  const settings = frame(0x4, Buffer.alloc(0));
  const debug = Buffer.from(MESSAGE, "utf8");
  const payload = Buffer.alloc(8 + debug.length);
  payload.writeUInt32BE(0, 0); // last stream id: none was processed
  payload.writeUInt32BE(0x1, 4); // PROTOCOL_ERROR
  debug.copy(payload, 8);
  return Buffer.concat([settings, frame(0x7, payload)]);
}

function frame(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(0, 4); // flags
  header.writeUInt32BE(0, 5); // stream 0: the connection
  return Buffer.concat([header, payload]);
}
