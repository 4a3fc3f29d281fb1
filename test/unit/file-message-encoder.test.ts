/**
 * The gRPC path's own writer for file metadata messages against protobuf-es's toBinary: the same
 * bytes for every message, including the edges of proto3 (defaults left out, `optional` fields
 * present at zero, negative int64 and enum values, non-ASCII and unpaired-surrogate strings).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FileSchema,
  GetFileResponseSchema,
  ListFilesResponseSchema,
  UploadFileResponseSchema,
} from "../../gen/ts/files/v1/files_pb.js";
import { FILE_MESSAGE_ENCODERS } from "../../src/transport/grpc/file-message-encoder.js";
import { encodeEnvelope } from "../../src/transport/grpc/outbound-envelopes.js";

const int64 = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: 0n, max: 2n ** 40n }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  fc.constantFrom(BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER) + 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n)),
);
const text = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme" }), fc.string({ unit: "binary" }), fc.string({ minLength: 100, maxLength: 400 }));
const enumValue = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const file = fc.record({
  id: text,
  bytes: int64,
  createdAt: int64,
  expiresAt: fc.option(int64, { nil: undefined }),
  filename: text,
  purpose: enumValue,
  mimeType: text,
  sha256: text,
  status: enumValue,
}).map((init) => create(FileSchema, init));

describe("the file message writer", () => {
  it("writes a ListFiles page exactly as toBinary does", () => {
    fc.assert(
      fc.property(
        fc.array(file, { maxLength: 20 }),
        fc.boolean(),
        fc.option(text, { nil: undefined }),
        fc.option(text, { nil: undefined }),
        (data, hasMore, firstId, lastId) => {
          const message = create(ListFilesResponseSchema, { data, hasMore, firstId, lastId });
          const fast = FILE_MESSAGE_ENCODERS[ListFilesResponseSchema.typeName]!(message);
          expect(fast).toBeDefined();
          expect(Buffer.from(fast!).equals(Buffer.from(toBinary(ListFilesResponseSchema, message)))).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("writes GetFile and UploadFile answers exactly as toBinary does, with or without a file", () => {
    for (const schema of [GetFileResponseSchema, UploadFileResponseSchema]) {
      fc.assert(
        fc.property(fc.option(file, { nil: undefined }), (f) => {
          const message = create(schema, { file: f });
          const fast = FILE_MESSAGE_ENCODERS[schema.typeName]!(message);
          expect(Buffer.from(fast!).equals(Buffer.from(toBinary(schema, message)))).toBe(true);
        }),
        { numRuns: 1000 },
      );
    }
  });

  it("leaves a message with unknown fields to toBinary, which keeps them", () => {
    const withUnknown = create(FileSchema, { id: "file-x" });
    (withUnknown as { $unknown?: unknown[] }).$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([7]) }];
    const page = create(ListFilesResponseSchema, { data: [withUnknown] });
    expect(FILE_MESSAGE_ENCODERS[ListFilesResponseSchema.typeName]!(page)).toBeUndefined();
    const [envelope] = encodeEnvelope(ListFilesResponseSchema, page, 1 << 20);
    expect(Buffer.from(envelope!.subarray(5)).equals(Buffer.from(toBinary(ListFilesResponseSchema, page)))).toBe(true);
  });

  it("frames the page in one envelope, and refuses one over the message limit", () => {
    const data = Array.from({ length: 100 }, (_, i) => create(FileSchema, { id: `file-${i}`, bytes: 5n, filename: "a.txt", sha256: "f".repeat(64) }));
    const page = create(ListFilesResponseSchema, { data, hasMore: true, firstId: "file-0", lastId: "file-99" });
    const body = toBinary(ListFilesResponseSchema, page);
    const [envelope] = encodeEnvelope(ListFilesResponseSchema, page, 1 << 20);
    expect(envelope![0]).toBe(0);
    expect(Buffer.from(envelope!).readUInt32BE(1)).toBe(body.byteLength);
    expect(Buffer.from(envelope!.subarray(5)).equals(Buffer.from(body))).toBe(true);
    expect(() => encodeEnvelope(ListFilesResponseSchema, page, body.byteLength - 1)).toThrow(/larger than configured writeMaxBytes/);
  });
});
