import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthenticationError, FilesError, InvalidArgumentError, NotFoundError, PermissionDeniedError, TooLargeError, UnavailableError, toFilesError } from "../../clients/ts/src/errors.js";
import { toPurpose } from "../../clients/ts/src/files-client.js";
import { backoffMs, DEFAULT_RETRY, withRetry } from "../../clients/ts/src/retry.js";
import { fixedPieces, knownSize, pieces } from "../../clients/ts/src/source.js";
import { partHead } from "../../clients/ts/src/grpc-upload-part.js";
import { AddUploadPartRequestSchema, FilePurpose } from "../../gen/ts/files/v1/files_pb.js";

async function collect(gen: AsyncGenerator<Uint8Array>): Promise<number[]> {
  const sizes: number[] = [];
  for await (const piece of gen) sizes.push(piece.byteLength);
  return sizes;
}

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);

describe("upload sources", () => {
  it("knows the size of bytes and Blobs, not of iterables", () => {
    expect(knownSize(bytes(5))).toBe(5);
    expect(knownSize(new Blob([bytes(7)]))).toBe(7);
    expect(knownSize([bytes(1)])).toBeUndefined();
  });

  it("pieces: splits large chunks, passes small ones, from bytes, Blobs and iterables", async () => {
    expect(await collect(pieces(bytes(10), 4))).toEqual([4, 4, 2]);
    expect(await collect(pieces(new Blob([bytes(9)]), 4))).toEqual([4, 4, 1]);
    expect(await collect(pieces([bytes(3), bytes(9), bytes(0), bytes(4)], 4))).toEqual([3, 4, 4, 1, 4]);
    expect(await collect(pieces(bytes(0), 4))).toEqual([]);
  });

  it("fixedPieces: exactly `size` bytes each but the last, in order, whatever the input chunking", async () => {
    const data = bytes(23);
    const chunked = [data.subarray(0, 1), data.subarray(1, 9), data.subarray(9, 9), data.subarray(9, 20), data.subarray(20)];
    const out: number[] = [];
    const sizes: number[] = [];
    for await (const piece of fixedPieces(chunked, 5)) {
      sizes.push(piece.byteLength);
      out.push(...piece);
    }
    expect(sizes).toEqual([5, 5, 5, 5, 3]);
    expect(out).toEqual([...data]);
    expect(await collect(fixedPieces([bytes(10)], 5))).toEqual([5, 5]);
  });
});

describe("errors", () => {
  const call = (code: Code, message: string, requestId?: string) => new ConnectError(message, code, requestId ? { "x-request-id": requestId } : undefined);

  it("one class per case a caller branches on, with code, message and request id", () => {
    const e = toFilesError(call(Code.NotFound, "No such file: 'file-1'", "req-123"));
    expect(e).toBeInstanceOf(NotFoundError);
    expect(e).toMatchObject({ code: Code.NotFound, codeName: "NotFound", message: "No such file: 'file-1'", requestId: "req-123" });
    expect(toFilesError(call(Code.Unauthenticated, "x"))).toBeInstanceOf(AuthenticationError);
    expect(toFilesError(call(Code.PermissionDenied, "x"))).toBeInstanceOf(PermissionDeniedError);
    expect(toFilesError(call(Code.InvalidArgument, "x"))).toBeInstanceOf(InvalidArgumentError);
    expect(toFilesError(call(Code.Unavailable, "x"))).toBeInstanceOf(UnavailableError);
    expect(toFilesError(call(Code.Internal, "x")).constructor).toBe(FilesError);
  });

  it("RESOURCE_EXHAUSTED is too large when the service names a limit, else busy (retryable)", () => {
    expect(toFilesError(call(Code.ResourceExhausted, "The file is larger than the limit of 1024 bytes"))).toBeInstanceOf(TooLargeError);
    expect(toFilesError(call(Code.ResourceExhausted, "bytes 9 is larger than the upload limit of 8 bytes"))).toBeInstanceOf(TooLargeError);
    expect(toFilesError(call(Code.ResourceExhausted, "too many uploads in progress; try again"))).toBeInstanceOf(UnavailableError);
  });
});

describe("retries", () => {
  it("backs off with full jitter, doubling up to the cap", () => {
    for (let retry = 1; retry <= 8; retry++) {
      const cap = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** (retry - 1));
      for (let i = 0; i < 50; i++) expect(backoffMs(DEFAULT_RETRY, retry)).toBeLessThanOrEqual(cap);
    }
  });

  it("retries what is retryable up to the attempts, and nothing else", async () => {
    const policy = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };
    let n = 0;
    await expect(withRetry(policy, async () => { n++; throw new ConnectError("down", Code.Unavailable); })).rejects.toBeInstanceOf(UnavailableError);
    expect(n).toBe(3);
    n = 0;
    await expect(withRetry(policy, async () => { n++; throw new ConnectError("no", Code.InvalidArgument); })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(n).toBe(1);
    n = 0;
    expect(await withRetry(policy, async () => (++n < 3 ? Promise.reject(new ConnectError("busy", Code.ResourceExhausted)) : "ok"))).toBe("ok");
  });
});

it("purposes by OpenAI name or enum; an unknown name is refused naming the choices", () => {
  expect(toPurpose("fine-tune")).toBe(FilePurpose.FINE_TUNE);
  expect(toPurpose(FilePurpose.BATCH)).toBe(FilePurpose.BATCH);
  expect(() => toPurpose("training" as never)).toThrow(/unknown purpose 'training' \(one of assistants, batch/);
});

describe("AddUploadPart written by hand (node:http2 road)", () => {
  it("writes the same envelope and message bytes as protobuf-es, for parts of every varint length and the empty part", () => {
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 6 * 1024 * 1024, 2_097_151 + 1]) {
      const uploadId = "upload-" + "0123456789abcdef".repeat(2);
      const data = bytes(n);
      const wire = Buffer.concat([partHead(uploadId, n), data]);
      const message = toBinary(AddUploadPartRequestSchema, create(AddUploadPartRequestSchema, { uploadId, data }));
      expect(wire.readUInt32BE(1), `length prefix for ${n}`).toBe(message.length);
      expect(wire[0]).toBe(0);
      expect(Buffer.compare(wire.subarray(5), Buffer.from(message)), `bytes for ${n}`).toBe(0);
      expect(fromBinary(AddUploadPartRequestSchema, wire.subarray(5)).data.length).toBe(n);
    }
  });
});
