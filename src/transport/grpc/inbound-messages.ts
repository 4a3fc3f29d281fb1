import type { ServerHttp2Stream } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { clientCancelled } from "./call-context.js";
import { EnvelopeSplitter, type Envelope } from "./envelope-splitter.js";

/** A request compression the server accepts (connect-node's gzip and br have this shape). */
export interface Decompressor {
  readonly name: string;
  decompress(bytes: Uint8Array, readMaxBytes: number): Promise<Uint8Array>;
}

export interface InboundOptions<T> {
  readMaxBytes: number;
  /** The request's grpc-encoding, if not identity. */
  compression: Decompressor | null;
  decode(bytes: Uint8Array): T;
}

/** Request bytes buffered before the stream is paused (HTTP/2 flow control then holds the client back). */
const HIGH_WATER_BYTES = 2 * 1024 * 1024;

/**
 * The request messages of one call, read from its HTTP/2 stream as they arrive. Messages are
 * decoded one at a time as the handler asks for them; while more than a couple of MiB wait
 * undecoded, the stream is paused, so a slow store slows the client instead of filling memory.
 */
export class InboundMessages<T> implements AsyncIterator<T>, AsyncIterable<T> {
  private readonly splitter: EnvelopeSplitter;
  private readonly queue: Envelope[] = [];
  private queuedBytes = 0;
  private ended = false;
  private failure: ConnectError | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly options: InboundOptions<T>,
  ) {
    this.splitter = new EnvelopeSplitter(options.readMaxBytes);
    stream.on("data", this.onData);
    stream.once("end", this.onEnd);
    stream.once("close", this.onClose);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      const envelope = this.queue.shift();
      if (envelope) {
        this.queuedBytes -= envelope.data.byteLength;
        if (this.stream.isPaused() && this.queuedBytes < HIGH_WATER_BYTES) this.stream.resume();
        return { done: false, value: await this.decode(envelope) };
      }
      if (this.failure) throw this.failure;
      if (this.ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The one message of a unary or server-streaming call. */
  async single(): Promise<T> {
    const first = await this.next();
    if (first.done) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
    const second = await this.next();
    if (!second.done) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
    return first.value;
  }

  /** Stops reading: what the client still sends is dropped (the call's response says why). */
  async return(): Promise<IteratorResult<T>> {
    this.detach();
    this.queue.length = 0;
    this.ended = true;
    return { done: true, value: undefined };
  }

  private async decode({ flags, data }: Envelope): Promise<T> {
    let bytes = data;
    if ((flags & 1) === 1) {
      if (!this.options.compression) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
      bytes = await this.options.compression.decompress(data, this.options.readMaxBytes);
    }
    try {
      return this.options.decode(bytes);
    } catch (err) {
      throw new ConnectError(`parse binary: ${(err as Error).message}`, Code.Internal);
    }
  }

  private readonly onData = (chunk: Buffer) => {
    const before = this.queue.length;
    try {
      this.splitter.push(chunk, this.queue);
    } catch (err) {
      this.fail(err as ConnectError);
      return;
    }
    for (let i = before; i < this.queue.length; i++) this.queuedBytes += this.queue[i]!.data.byteLength;
    if (this.queuedBytes >= HIGH_WATER_BYTES) this.stream.pause();
    if (this.queue.length > before) this.signal();
  };

  private readonly onEnd = () => {
    if (this.splitter.midMessage) this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    this.ended = true;
    this.signal();
  };

  private readonly onClose = () => {
    if (!this.ended) this.fail(clientCancelled());
  };

  private fail(err: ConnectError): void {
    this.failure ??= err;
    this.detach();
    this.signal();
  }

  private detach(): void {
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.stream.off("close", this.onClose);
    // Unread bytes are discarded, so a stream with a refused body can still close.
    this.stream.resume();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
