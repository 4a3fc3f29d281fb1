import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DownloadFileResponseSchema, FilePurpose, FileSchema, GetFileResponseSchema } from "../../gen/ts/files/v1/files_pb.js";
import { EnvelopeSplitter, type Envelope } from "../../src/transport/grpc/envelope-splitter.js";
import { encodeBytesField, encodeEnvelope } from "../../src/transport/grpc/outbound-envelopes.js";

function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** Cuts `bytes` at the given offsets (sorted, deduplicated, within range). */
function cut(bytes: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((n) => n % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces.filter((p) => p.length > 0);
}

describe("EnvelopeSplitter", () => {
  it("returns every message intact, whatever the frame boundaries", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ flags: fc.integer({ min: 0, max: 1 }), data: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, cuts) => {
          const wire = Buffer.concat(messages.map((m) => envelope(m.flags, m.data)));
          const splitter = new EnvelopeSplitter(1024);
          const out: Envelope[] = [];
          for (const piece of cut(wire, cuts)) splitter.push(piece, out);
          expect(splitter.midMessage).toBe(false);
          expect(out.map((e) => ({ flags: e.flags, data: Buffer.from(e.data) }))).toEqual(messages.map((m) => ({ flags: m.flags, data: Buffer.from(m.data) })));
        },
      ),
    );
  });

  it("returns a message that lies within one chunk as a view of that chunk, not a copy", () => {
    const chunk = Buffer.concat([envelope(0, Buffer.from("abc")), envelope(0, Buffer.from("defg"))]);
    const out: Envelope[] = [];
    new EnvelopeSplitter(1024).push(chunk, out);
    expect(out).toHaveLength(2);
    expect(out[1]!.data.buffer).toBe(chunk.buffer);
    expect(Buffer.from(out[1]!.data).toString()).toBe("defg");
  });

  it("refuses a message over the limit from its prefix alone, with RESOURCE_EXHAUSTED naming both sizes", () => {
    const prefix = Buffer.from([0, 0, 0, 4, 1]); // 1025 bytes announced, none sent
    const splitter = new EnvelopeSplitter(1024);
    let error: unknown;
    try {
      splitter.push(prefix, []);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((error as ConnectError).rawMessage).toBe("message size 1025 is larger than configured readMaxBytes 1024");
  });

  it("accepts a message of exactly the limit, and reports a truncated one as mid-message", () => {
    const splitter = new EnvelopeSplitter(4);
    const out: Envelope[] = [];
    splitter.push(envelope(0, Buffer.from("abcd")), out);
    expect(out).toHaveLength(1);
    splitter.push(envelope(0, Buffer.from("ab")).subarray(0, 6), out);
    expect(splitter.midMessage).toBe(true);
  });
});

describe("encodeEnvelope", () => {
  const file = create(FileSchema, { id: "file-0123456789abcdef0123456789abcdef", bytes: 5n, filename: "a.txt", purpose: FilePurpose.ASSISTANTS });

  function decodeWire(pieces: Uint8Array[]): { flags: number; length: number; body: Buffer } {
    const wire = Buffer.concat(pieces);
    return { flags: wire[0]!, length: wire.readUInt32BE(1), body: wire.subarray(5) };
  }

  it.each([0, 1, 127, 128, 16_383, 16_384, 262_080, 2_097_152])("writes a %i-byte download chunk as the same bytes toBinary gives, without copying the chunk", (size) => {
    const chunk = Buffer.alloc(size, 7);
    const message = create(DownloadFileResponseSchema, { payload: { case: "chunk", value: chunk } });
    const pieces = encodeEnvelope(DownloadFileResponseSchema, message, 4 * 1024 * 1024);
    if (size > 0) expect(pieces.at(-1)).toBe(chunk);
    const { flags, length, body } = decodeWire(pieces);
    expect(flags).toBe(0);
    expect(length).toBe(body.length);
    expect(body.equals(Buffer.from(toBinary(DownloadFileResponseSchema, message)))).toBe(true);
  });

  it("writes other messages, and a download's first message, through toBinary", () => {
    for (const [schema, message] of [
      [GetFileResponseSchema, create(GetFileResponseSchema, { file })],
      [DownloadFileResponseSchema, create(DownloadFileResponseSchema, { payload: { case: "file", value: file } })],
    ] as const) {
      const { length, body } = decodeWire(encodeEnvelope(schema, message as never, 1024));
      expect(length).toBe(body.length);
      expect(fromBinary(schema, body)).toEqual(message);
    }
  });

  it("refuses a response message over the write limit with RESOURCE_EXHAUSTED", () => {
    const message = create(DownloadFileResponseSchema, { payload: { case: "chunk", value: Buffer.alloc(1024) } });
    expect(() => encodeEnvelope(DownloadFileResponseSchema, message, 1024)).toThrow(/message size 1027 is larger than configured writeMaxBytes 1024/);
  });

  it("joins several pieces into one bytes field, as toBinary would encode their concatenation, without copying them", () => {
    const pieces = [Buffer.alloc(100, 1), Buffer.alloc(0), Buffer.alloc(70_000, 2), Buffer.alloc(5, 3)];
    const joined = Buffer.concat(pieces);
    const wire = encodeBytesField(2, pieces, joined.length, 1 << 20);
    expect(wire.slice(1)).toEqual([pieces[0], pieces[2], pieces[3]]);
    const { length, body } = decodeWire(wire);
    expect(length).toBe(body.length);
    const message = fromBinary(DownloadFileResponseSchema, body);
    expect(message.payload.case).toBe("chunk");
    expect(Buffer.from(message.payload.value as Uint8Array).equals(joined)).toBe(true);
  });
});
