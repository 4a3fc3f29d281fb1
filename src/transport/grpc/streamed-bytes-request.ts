import type { ServerHttp2Stream } from "node:http2";
import { fromBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { clientCancelled } from "./call-context.js";

/** The fields before and after the bytes field (an id, a name) are small; more than this is refused. */
const FRAME_FIELDS_MAX_BYTES = 64 * 1024;
/** Bytes queued for the handler before the stream is paused (HTTP/2 flow control then holds the client back). */
const HIGH_WATER_BYTES = 2 * 1024 * 1024;
const PREFIX_BYTES = 5;

type Stage = "prefix" | "head" | "bytes" | "tail" | "done";

/**
 * The one request message of a unary call whose bulk is a single bytes field (AddUploadPart's
 * `data`), read from the HTTP/2 stream without waiting for the whole message: the fields before
 * the bytes field are decoded as the message (`single()`), and the bytes field's content is
 * handed on as views of the DATA frames as they arrive (`bytes`), so a part of many MiB is never
 * joined into one buffer and goes on to storage while it is still arriving.
 *
 * The gRPC and protobuf rules still hold: the message size limit (from the length prefix), a
 * truncated message, a second message, a compressed envelope without an encoding, and a client
 * that resets the stream each end `bytes` with an error before it reports its end, so whatever
 * consumes it (the store) aborts and nothing is kept. A field of the message that comes again
 * after the bytes field (protobuf would let the last one win) is refused as invalid. Fields
 * before the bytes field beyond FRAME_FIELDS_MAX_BYTES are refused too.
 */
export class StreamedBytesRequest {
  private stage: Stage = "prefix";
  private pending: Buffer = Buffer.alloc(0);
  private messageBytes = 0;
  private messageRead = 0;
  private bytesLeft = 0;
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private ended = false;
  private failure: ConnectError | undefined;
  private wake: (() => void) | undefined;
  private head: { resolve: (m: unknown) => void; reject: (e: unknown) => void } | undefined;
  private readonly message: Promise<unknown>;
  private readonly knownFields: Set<number>;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly schema: DescMessage,
    private readonly bytesField: DescField,
    private readonly readMaxBytes: number,
  ) {
    this.knownFields = new Set(schema.fields.map((f) => f.number));
    this.message = new Promise((resolve, reject) => (this.head = { resolve, reject }));
    this.message.catch(() => {}); // a call refused before reading its request never asks for it
    stream.on("data", this.onData);
    stream.once("end", this.onEnd);
    stream.once("close", this.onClose);
  }

  /** The message without its bytes field. */
  single(): Promise<unknown> {
    return this.message;
  }

  /** The bytes field's content, in order; ends only once the message and the request have ended as they should. */
  readonly bytes: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => this.iterate(),
  };

  private async *iterate(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        const chunk = this.queue.shift();
        if (chunk) {
          this.queuedBytes -= chunk.byteLength;
          if (this.stream.isPaused() && this.queuedBytes < HIGH_WATER_BYTES) this.stream.resume();
          yield chunk;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.stage === "done" && this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      if (!(this.stage === "done" && this.ended)) this.return();
    }
  }

  /** Stops reading: what the client still sends is dropped (the call's response says why). */
  return(): void {
    this.detach();
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private readonly onData = (chunk: Buffer) => {
    try {
      this.take(chunk);
    } catch (err) {
      this.fail(err instanceof ConnectError ? err : new ConnectError(String(err), Code.Internal));
      return;
    }
    if (this.queuedBytes >= HIGH_WATER_BYTES) this.stream.pause();
    this.signal();
  };

  private take(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.stage) {
        case "prefix": {
          const n = Math.min(PREFIX_BYTES - this.pending.length, chunk.length - at);
          this.pending = Buffer.concat([this.pending, chunk.subarray(at, at + n)]);
          at += n;
          if (this.pending.length < PREFIX_BYTES) return;
          if ((this.pending[0]! & 1) === 1) throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
          this.messageBytes = this.pending.readUInt32BE(1);
          if (this.messageBytes > this.readMaxBytes) {
            throw new ConnectError(`message size ${this.messageBytes} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted);
          }
          this.pending = Buffer.alloc(0);
          this.stage = "head";
          if (this.messageBytes === 0) this.parseHead();
          break;
        }
        case "head": {
          const n = Math.min(this.messageBytes - this.messageRead, chunk.length - at);
          this.pending = this.pending.length === 0 ? chunk.subarray(at, at + n) : Buffer.concat([this.pending, chunk.subarray(at, at + n)]);
          this.messageRead += n;
          at += n;
          this.parseHead();
          break;
        }
        case "bytes": {
          const n = Math.min(this.bytesLeft, chunk.length - at);
          this.push(chunk.subarray(at, at + n));
          this.bytesLeft -= n;
          this.messageRead += n;
          at += n;
          if (this.bytesLeft === 0) this.toTail(Buffer.alloc(0));
          break;
        }
        case "tail": {
          const n = Math.min(this.messageBytes - this.messageRead, chunk.length - at);
          this.pending = Buffer.concat([this.pending, chunk.subarray(at, at + n)]);
          this.messageRead += n;
          at += n;
          if (this.pending.length > FRAME_FIELDS_MAX_BYTES) throw this.fieldsTooLarge("after");
          if (this.messageRead === this.messageBytes) this.checkTail();
          break;
        }
        case "done":
          throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
      }
    }
  }

  /** Parses the fields in `pending` up to the bytes field's content; waits for more when they stop short. */
  private parseHead(): void {
    const buf = this.pending;
    const whole = this.messageRead === this.messageBytes;
    let pos = 0;
    while (pos < buf.length) {
      const tagAt = pos;
      const tag = readVarint(buf, pos);
      if (!tag) break;
      pos = tag.next;
      const field = Math.floor(tag.value / 8);
      const wireType = tag.value % 8;
      if (field === this.bytesField.number && wireType === 2) {
        const length = readVarint(buf, pos);
        if (!length) break;
        if (length.next + length.value > buf.length + (this.messageBytes - this.messageRead)) {
          throw new ConnectError("parse binary: premature EOF", Code.Internal);
        }
        this.resolveHead(buf.subarray(0, tagAt));
        this.bytesLeft = length.value;
        const inHand = buf.subarray(length.next, Math.min(buf.length, length.next + length.value));
        if (inHand.length > 0) this.push(inHand);
        this.bytesLeft -= inHand.length;
        this.pending = Buffer.alloc(0);
        if (this.bytesLeft > 0) this.stage = "bytes";
        else this.toTail(buf.subarray(length.next + length.value));
        return;
      }
      const skipped = skipField(buf, pos, wireType);
      if (skipped === undefined) break;
      pos = skipped;
    }
    if (whole) {
      // The message ended without the bytes field (an empty part, as protobuf writes it).
      if (pos !== buf.length) throw new ConnectError("parse binary: premature EOF", Code.Internal);
      this.resolveHead(buf);
      this.pending = Buffer.alloc(0);
      this.stage = "done";
      return;
    }
    if (buf.length > FRAME_FIELDS_MAX_BYTES) throw this.fieldsTooLarge("before");
    // Keep what is in hand as our own copy: views of frames would pin them.
    if (this.pending === buf && buf.length > 0) this.pending = Buffer.from(buf);
  }

  private toTail(inHand: Buffer): void {
    this.stage = "tail";
    this.pending = Buffer.from(inHand);
    if (this.messageRead === this.messageBytes) this.checkTail();
  }

  /** The fields after the bytes field: unknown ones are let through, known ones are refused. */
  private checkTail(): void {
    const buf = this.pending;
    let pos = 0;
    while (pos < buf.length) {
      const tag = readVarint(buf, pos);
      if (!tag) throw new ConnectError("parse binary: premature EOF", Code.Internal);
      const field = Math.floor(tag.value / 8);
      if (this.knownFields.has(field)) {
        throw new ConnectError(
          `${this.schema.typeName}: field ${field} after ${this.bytesField.name} is not accepted; send ${this.bytesField.name} last, once`,
          Code.InvalidArgument,
        );
      }
      const next = skipField(buf, tag.next, tag.value % 8);
      if (next === undefined) throw new ConnectError("parse binary: premature EOF", Code.Internal);
      pos = next;
    }
    this.pending = Buffer.alloc(0);
    this.stage = "done";
  }

  private resolveHead(bytes: Uint8Array): void {
    let message: unknown;
    try {
      message = fromBinary(this.schema, bytes);
    } catch (err) {
      throw new ConnectError(`parse binary: ${(err as Error).message}`, Code.Internal);
    }
    this.head?.resolve(message);
    this.head = undefined;
  }

  private fieldsTooLarge(where: "before" | "after"): ConnectError {
    return new ConnectError(`${this.schema.typeName}: the fields ${where} ${this.bytesField.name} pass ${FRAME_FIELDS_MAX_BYTES} bytes`, Code.InvalidArgument);
  }

  private push(view: Uint8Array): void {
    this.queue.push(view);
    this.queuedBytes += view.byteLength;
  }

  private readonly onEnd = () => {
    this.ended = true;
    if (this.stage === "prefix" && this.pending.length === 0 && this.head) {
      this.fail(new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
    } else if (this.stage !== "done") {
      this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    }
    this.signal();
  };

  private readonly onClose = () => {
    if (!this.ended) this.fail(clientCancelled());
  };

  private fail(err: ConnectError): void {
    this.failure ??= err;
    this.head?.reject(err);
    this.head = undefined;
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

/** A protobuf varint at `pos` (exact up to 2^53, plenty for tags and lengths), or undefined if `buf` stops inside it. */
function readVarint(buf: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = pos, scale = 1; i < buf.length && i < pos + 10; i++, scale *= 128) {
    const b = buf[i]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  if (buf.length >= pos + 10) throw new ConnectError("parse binary: invalid varint", Code.Internal);
  return undefined;
}

/** The position after a field's value, or undefined if `buf` stops inside it. */
function skipField(buf: Uint8Array, pos: number, wireType: number): number | undefined {
  switch (wireType) {
    case 0:
      return readVarint(buf, pos)?.next;
    case 1:
      return pos + 8 <= buf.length ? pos + 8 : undefined;
    case 2: {
      const length = readVarint(buf, pos);
      if (!length) return undefined;
      return length.next + length.value <= buf.length ? length.next + length.value : undefined;
    }
    case 5:
      return pos + 4 <= buf.length ? pos + 4 : undefined;
    default:
      throw new ConnectError(`parse binary: cant skip wire type ${wireType}`, Code.Internal);
  }
}
