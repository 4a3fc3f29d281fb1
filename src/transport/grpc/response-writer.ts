import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { clientCancelled } from "./call-context.js";

/**
 * Bytes queued on the stream before the next message waits for them to drain. The stream's own
 * high-water mark (16 KiB) would make every message wait for the one before to be sent; a little
 * more lets the next read from the store overlap with sending.
 */
const WRITE_AHEAD_BYTES = 1024 * 1024;

/** How long trailers may wait behind unsent data (a client that stopped reading) before the stream is reset. */
const TRAILER_GRACE_MS = 1_000;

/**
 * Writes one gRPC response onto an HTTP/2 stream: headers, length-prefixed messages with
 * backpressure, then trailers; or, for a call that fails before its first message, one
 * trailers-only HEADERS frame.
 */
export class ResponseWriter {
  private headersSent = false;
  private finished = false;

  constructor(
    private readonly stream: ServerHttp2Stream,
    /** Aborted when the call ends early (deadline, cancel): a write waiting for the client gives up. */
    private readonly signal: AbortSignal,
  ) {}

  get started(): boolean {
    return this.headersSent;
  }

  sendHeaders(headers: OutgoingHttpHeaders): void {
    this.headersSent = true;
    if (this.gone()) throw clientCancelled();
    this.stream.respond({ ...headers, ":status": 200 }, { waitForTrailers: true });
  }

  /** Writes one message's pieces in one writev; resolves once the stream can take more. */
  async write(pieces: Uint8Array[]): Promise<void> {
    const { stream } = this;
    if (this.gone()) throw clientCancelled();
    stream.cork();
    for (const piece of pieces) stream.write(piece);
    stream.uncork();
    if (stream.writableLength > WRITE_AHEAD_BYTES) await this.drained();
  }

  /** Ends a response whose headers were sent, with these trailers. */
  end(trailers: OutgoingHttpHeaders): void {
    if (this.finished) return;
    this.finished = true;
    const { stream } = this;
    if (this.gone()) return;
    stream.once("wantTrailers", () => {
      stream.sendTrailers(trailers);
      this.stopClientSending();
    });
    stream.end();
    // Trailers go out only after every queued DATA frame. A call cut short (deadline, cancel)
    // must not wait on a client that stopped reading: it is reset after a grace period.
    if (this.signal.aborted && stream.writableLength > 0) {
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), TRAILER_GRACE_MS);
      stream.once("close", () => clearTimeout(timer));
    }
  }

  /** Answers a call that failed before any message with a single HEADERS frame. */
  trailersOnly(headers: OutgoingHttpHeaders): void {
    if (this.finished) return;
    this.finished = true;
    if (this.gone()) return;
    this.headersSent = true;
    this.stream.respond({ ...headers, ":status": 200 }, { endStream: true });
    this.stopClientSending();
  }

  /**
   * A response may end before the request has (an error mid-upload). Reset the stream with
   * NO_ERROR, as the HTTP/2 spec allows, so the client stops sending; on the next turn, so the
   * trailers are on the wire first.
   */
  private stopClientSending(): void {
    setImmediate(() => {
      if (!this.stream.destroyed && this.stream.state.remoteClose === 0) this.stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
  }

  /** A stream the client reset (or that timed out) takes no more frames. */
  private gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  private drained(): Promise<void> {
    const { stream, signal } = this;
    return new Promise((resolve, reject) => {
      const done = (err?: unknown) => {
        stream.off("drain", onDrain);
        stream.off("close", onClose);
        signal.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(String(err)));
      };
      const onDrain = () => done();
      const onClose = () => done(clientCancelled());
      const onAbort = () => done(signal.reason);
      stream.once("drain", onDrain);
      stream.once("close", onClose);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
