/**
 * A gRPC client built from node:http2 alone, for tests that pin down the wire protocol
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): the test chooses every request
 * header and every byte of the length-prefixed messages, and sees the response as it arrived:
 * the first HEADERS frame and whether it ended the stream (trailers-only), each message with its
 * compressed flag, the trailers, and the RST_STREAM code if the stream was reset.
 */
import http2 from "node:http2";
import net from "node:net";

const { NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** A 5-byte prefix (compressed flag, big-endian length) and the message; `declaredLength` lies about the length. */
export function envelope(message: Uint8Array, options: { compressed?: boolean; declaredLength?: number } = {}): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(options.compressed ? 1 : 0, 0);
  prefix.writeUInt32BE(options.declaredLength ?? message.byteLength, 1);
  return Buffer.concat([prefix, message]);
}

export interface RawMessage {
  /** The first byte of the prefix: 0 uncompressed, 1 compressed. */
  flag: number;
  data: Buffer;
}

/** Splits a byte stream into length-prefixed messages; bytes left over at the end are reported, not dropped. */
export function splitEnvelopes(bytes: Buffer): { messages: RawMessage[]; rest: Buffer } {
  const messages: RawMessage[] = [];
  let at = 0;
  while (bytes.length - at >= 5) {
    const length = bytes.readUInt32BE(at + 1);
    if (bytes.length - at - 5 < length) break;
    messages.push({ flag: bytes[at]!, data: bytes.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { messages, rest: bytes.subarray(at) };
}

export interface RawGrpcResult {
  /** The first HEADERS frame (undefined if the stream was reset before any). */
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader | undefined;
  /** True when that first HEADERS frame carried END_STREAM: a trailers-only response. */
  trailersOnly: boolean;
  /** The trailing HEADERS frame, when the response was not trailers-only. */
  trailers: http2.IncomingHttpHeaders | undefined;
  /** The response messages, in order. */
  messages: RawMessage[];
  /** Bytes of DATA that did not form a whole message. */
  leftover: Buffer;
  /** Total DATA bytes received. */
  dataBytes: number;
  /** The RST_STREAM code the stream closed with (0: NO_ERROR, also when it simply ended). */
  rstCode: number | undefined;
  /** An error the stream emitted (a reset by the peer shows up here too). */
  error: Error | undefined;
  /** Milliseconds from the request to the stream's close. */
  ms: number;
}

/** grpc-status, from the trailers or, for a trailers-only response, the headers. */
export function grpcStatus(result: RawGrpcResult): number | undefined {
  const value = (result.trailersOnly ? result.headers : result.trailers)?.["grpc-status"];
  return typeof value === "string" ? Number(value) : undefined;
}

/** The raw (still percent-encoded) grpc-message, from wherever grpc-status came from. */
export function rawGrpcMessage(result: RawGrpcResult): string | undefined {
  const value = (result.trailersOnly ? result.headers : result.trailers)?.["grpc-message"];
  return typeof value === "string" ? value : undefined;
}

/** Where the status was sent: the headers of a trailers-only response, else the trailers. */
export function statusHeaders(result: RawGrpcResult): http2.IncomingHttpHeaders | undefined {
  return result.trailersOnly ? result.headers : result.trailers;
}

/** The spec's percent-decoding of grpc-message: %XX are UTF-8 bytes, everything else is itself. */
export function decodeGrpcMessage(raw: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const hex = raw.slice(i + 1, i + 3);
    if (raw[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(raw.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

export interface CallOptions {
  /** Extra request headers (grpc-timeout, grpc-encoding, ...); content-type defaults to application/grpc. */
  headers?: http2.OutgoingHttpHeaders;
  /** Written one after another, each as its own write; a Buffer is one write. */
  body?: Buffer | Buffer[];
  /** End the request after the body (default true). */
  end?: boolean;
  /** The stream is destroyed and the call fails if it has not closed by then (default 15 s). */
  timeoutMs?: number;
}

export interface RawCall {
  stream: http2.ClientHttp2Stream;
  /** Resolves once the stream has closed, with everything that arrived. */
  result: Promise<RawGrpcResult>;
  /** Resolves with the first response HEADERS (or undefined if the stream closed without any). */
  response: Promise<void>;
  /** Resolves when the first DATA bytes arrive. */
  firstData: Promise<void>;
}

/** Opens a POST stream to `path` on `session` with gRPC headers and collects the answer. */
export function startCall(session: http2.ClientHttp2Session, path: string, options: CallOptions = {}): RawCall {
  const t0 = Date.now();
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...options.headers,
  });
  const state = {
    headers: undefined as RawGrpcResult["headers"],
    trailersOnly: false,
    trailers: undefined as RawGrpcResult["trailers"],
    chunks: [] as Buffer[],
    error: undefined as Error | undefined,
  };
  let onResponse!: () => void;
  const response = new Promise<void>((r) => (onResponse = r));
  let onFirstData!: () => void;
  const firstData = new Promise<void>((r) => (onFirstData = r));
  stream.on("response", (headers, flags) => {
    state.headers = headers;
    state.trailersOnly = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    onResponse();
  });
  stream.on("trailers", (trailers) => {
    state.trailers = trailers;
  });
  stream.on("data", (chunk: Buffer) => {
    state.chunks.push(chunk);
    onFirstData();
  });
  stream.on("error", (err) => {
    state.error = err;
  });
  const result = new Promise<RawGrpcResult>((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 15_000;
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`${path}: the stream did not close within ${timeoutMs} ms (headers: ${JSON.stringify(state.headers)})`));
    }, timeoutMs);
    stream.on("close", () => {
      clearTimeout(timer);
      onResponse();
      const bytes = Buffer.concat(state.chunks);
      const { messages, rest } = splitEnvelopes(bytes);
      resolve({
        headers: state.headers,
        trailersOnly: state.trailersOnly,
        trailers: state.trailers,
        messages,
        leftover: rest,
        dataBytes: bytes.length,
        rstCode: stream.rstCode,
        error: state.error,
        ms: Date.now() - t0,
      });
    });
  });
  const body = options.body === undefined ? [] : Array.isArray(options.body) ? options.body : [options.body];
  for (const piece of body) stream.write(piece);
  if (options.end ?? true) stream.end();
  return { stream, result, response, firstData };
}

/** One whole call: the request body written as given, then the answer. */
export function rawCall(session: http2.ClientHttp2Session, path: string, options: CallOptions = {}): Promise<RawGrpcResult> {
  return startCall(session, path, options).result;
}

/** An HTTP/2 session to `baseUrl`, connected. */
export function connectSession(baseUrl: string, settings?: http2.Settings): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl, settings ? { settings } : {});
    session.once("connect", () => {
      session.off("error", reject);
      session.on("error", () => {}); // a test that resets streams must not crash on a session error it did not ask about
      resolve(session);
    });
    session.once("error", reject);
  });
}

/** Closes a session, resolving once it has gone (destroys it if it does not close in time). */
export function closeSession(session: http2.ClientHttp2Session, timeoutMs = 2_000): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      resolve();
    }, timeoutMs);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * A google.rpc.Status read by hand (field 1 varint code, field 2 string message, field 3 repeated
 * Any details, counted only), so the test does not lean on any gRPC library's copy of the schema.
 */
export function decodeRpcStatus(bytes: Uint8Array): { code: number; message: string; details: number } {
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (at >= bytes.length) throw new Error("truncated varint");
      const b = bytes[at++]!;
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
      shift += 7;
    }
  };
  const out = { code: 0, message: "", details: 0 };
  while (at < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 1) out.code = v;
    } else if (wire === 2) {
      const len = varint();
      const value = bytes.subarray(at, at + len);
      if (value.length !== len) throw new Error("truncated field");
      at += len;
      if (field === 2) out.message = Buffer.from(value).toString("utf8");
      if (field === 3) out.details++;
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 5) {
      at += 4;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// HTTP/2 by hand, for what node:http2's client cannot send
// ---------------------------------------------------------------------------

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman: enough for short request headers. */
function hpackLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name, "latin1");
  const v = Buffer.from(value, "latin1");
  if (n.length > 126 || v.length > 126) throw new Error(`header ${name} is too long for this encoder`);
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

/** What arrived on one stream of a RawH2Connection (header blocks are not decoded). */
export interface RawH2Stream {
  headerFrames: number;
  /** The DATA payloads received, in order. */
  data: Buffer[];
  dataBytes: number;
  endStream: boolean;
  rstCode: number | undefined;
}

/**
 * A client connection speaking HTTP/2 frames directly over TCP. node:http2's client cannot reset
 * a stream without first half-closing it: stream.close(code) ends the writable side, and the
 * END_STREAM (an empty DATA frame) goes out before the RST_STREAM whenever flow control lets it,
 * so the server sees a complete request and only then the cancel. This one sends exactly the
 * frames asked for. It honours the server's flow-control windows, acknowledges SETTINGS and PING,
 * and records per stream what came back.
 */
export class RawH2Connection {
  private buffered = Buffer.alloc(0);
  private connectionWindow = 65_535;
  private initialStreamWindow = 65_535;
  private maxFrameSize = 16_384;
  private readonly streamWindows = new Map<number, number>();
  private readonly waiters: (() => void)[] = [];
  private nextStreamId = 1;
  readonly streams = new Map<number, RawH2Stream>();
  goaway: number | undefined;

  private settingsSeen = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {});
  }

  /** Connects, sends the preface and empty SETTINGS, and waits for the server's SETTINGS and first window update. */
  static async connect(port: number, host = "127.0.0.1"): Promise<RawH2Connection> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const conn = new RawH2Connection(socket);
    socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
    await conn.until(() => conn.settingsSeen, 5_000, "the server's SETTINGS");
    return conn;
  }

  /** Opens a stream with a HEADERS frame (END_HEADERS, no END_STREAM); returns its id. */
  openStream(headers: Record<string, string>): number {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    this.streams.set(id, { headerFrames: 0, data: [], dataBytes: 0, endStream: false, rstCode: undefined });
    this.streamWindows.set(id, this.initialStreamWindow);
    const block = Buffer.concat(Object.entries(headers).map(([name, value]) => hpackLiteral(name, value)));
    this.socket.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, block));
    return id;
  }

  /** Sends each piece as DATA frames of its own (one frame unless it is over the peer's frame size); END_STREAM on the last if asked. */
  async sendDataFrames(streamId: number, pieces: Buffer[], endStream = false): Promise<void> {
    for (const [i, piece] of pieces.entries()) await this.sendData(streamId, piece, endStream && i === pieces.length - 1, false);
    await new Promise<void>((resolve) => this.socket.write(Buffer.alloc(0), () => resolve()));
  }

  /** Sends `bytes` as DATA frames within the flow-control windows, waiting for window updates as needed. */
  async sendData(streamId: number, bytes: Buffer, endStream = false, flush = true): Promise<void> {
    let at = 0;
    do {
      await this.until(() => this.connectionWindow > 0 && (this.streamWindows.get(streamId) ?? 0) > 0, 10_000, "flow-control window");
      const n = Math.min(bytes.length - at, this.maxFrameSize, this.connectionWindow, this.streamWindows.get(streamId)!);
      const last = at + n === bytes.length;
      this.socket.write(frame(FRAME.DATA, last && endStream ? FLAG.END_STREAM : 0, streamId, bytes.subarray(at, at + n)));
      this.connectionWindow -= n;
      this.streamWindows.set(streamId, this.streamWindows.get(streamId)! - n);
      at += n;
    } while (at < bytes.length);
    // Resolves once the bytes have left for the kernel.
    if (flush) await new Promise<void>((resolve) => this.socket.write(Buffer.alloc(0), () => resolve()));
  }

  /** Sends RST_STREAM with `code` (8: CANCEL). */
  reset(streamId: number, code: number): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    this.socket.write(frame(FRAME.RST_STREAM, 0, streamId, payload));
  }

  /** Resolves when `check` holds, re-checked on every frame received; rejects after `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const waiter = () => {
        if (!check()) return void this.waiters.push(waiter);
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push(waiter);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) break;
      const type = this.buffered[3]!;
      const flags = this.buffered[4]!;
      const streamId = this.buffered.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buffered.subarray(9, 9 + length);
      this.buffered = this.buffered.subarray(9 + length);
      this.onFrame(type, flags, streamId, payload);
    }
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const stream = this.streams.get(streamId);
    switch (type) {
      case FRAME.SETTINGS:
        if (flags & FLAG.ACK) return;
        for (let at = 0; at + 6 <= payload.length; at += 6) {
          const id = payload.readUInt16BE(at);
          const value = payload.readUInt32BE(at + 2);
          if (id === 0x4) {
            for (const [sid, window] of this.streamWindows) this.streamWindows.set(sid, window + value - this.initialStreamWindow);
            this.initialStreamWindow = value;
          }
          if (id === 0x5) this.maxFrameSize = value;
        }
        this.socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        this.settingsSeen = true;
        return;
      case FRAME.PING:
        if (!(flags & FLAG.ACK)) this.socket.write(frame(FRAME.PING, FLAG.ACK, 0, payload));
        return;
      case FRAME.WINDOW_UPDATE: {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (streamId === 0) this.connectionWindow += increment;
        else if (this.streamWindows.has(streamId)) this.streamWindows.set(streamId, this.streamWindows.get(streamId)! + increment);
        return;
      }
      case FRAME.GOAWAY:
        this.goaway = payload.readUInt32BE(4);
        return;
      case FRAME.HEADERS:
        if (stream) {
          stream.headerFrames++;
          if (flags & FLAG.END_STREAM) stream.endStream = true;
        }
        return;
      case FRAME.DATA:
        if (stream) {
          stream.data.push(Buffer.from(payload));
          stream.dataBytes += payload.length;
          if (flags & FLAG.END_STREAM) stream.endStream = true;
        }
        return;
      case FRAME.RST_STREAM:
        if (stream) stream.rstCode = payload.readUInt32BE(0);
        return;
    }
  }
}
