import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DownloadFileResponseSchema, type DownloadFileResponse } from "../../../gen/ts/files/v1/files_pb.js";
import { FILE_MESSAGE_ENCODERS, varintSize } from "./file-message-encoder.js";

const PREFIX_BYTES = 5;
/** Wire type 2 (length-delimited) for a field number. */
const lengthDelimitedTag = (field: number) => (field << 3) | 2;

/**
 * A response message whose only content is one bytes field (a download chunk), as that field's
 * number and bytes; anything else (more fields, unknown fields) is encoded the general way.
 */
type BulkBytesOf = (message: unknown) => { field: number; bytes: Uint8Array } | undefined;

const BULK_BYTES: Record<string, BulkBytesOf> = {
  [DownloadFileResponseSchema.typeName]: (message) => {
    const m = message as DownloadFileResponse & { $unknown?: unknown[] };
    if (m.payload.case !== "chunk" || (m.$unknown && m.$unknown.length > 0)) return undefined;
    return { field: 2, bytes: m.payload.value };
  },
};

/** The bytes field a response message carries alone (a download chunk), or undefined. */
export function bulkBytesOf(schema: DescMessage, message: unknown): { field: number; bytes: Uint8Array } | undefined {
  return BULK_BYTES[schema.typeName]?.(message);
}

/**
 * Encodes one response message as a gRPC length-prefixed message, in pieces to be written in
 * order. A download chunk becomes the envelope and field prefix (a few bytes) followed by the
 * chunk itself, so file bytes are never copied into a message buffer.
 */
export function encodeEnvelope<D extends DescMessage>(schema: D, message: MessageShape<D>, writeMaxBytes: number): Uint8Array[] {
  const bulk = bulkBytesOf(schema, message);
  if (bulk) return encodeBytesField(bulk.field, [bulk.bytes], bulk.bytes.byteLength, writeMaxBytes);
  const bytes = FILE_MESSAGE_ENCODERS[schema.typeName]?.(message) ?? toBinary(schema, message);
  assertWithin(bytes.byteLength, writeMaxBytes);
  const out = Buffer.allocUnsafe(PREFIX_BYTES + bytes.byteLength);
  out[0] = 0;
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, PREFIX_BYTES);
  return [out];
}

/**
 * One message holding only the length-delimited field `field`, whose value is `pieces` joined:
 * the prefix, then the pieces as they are. Protobuf sees one field; nothing is copied.
 */
export function encodeBytesField(field: number, pieces: Uint8Array[], length: number, writeMaxBytes: number): Uint8Array[] {
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES + 1 + varintSize(length));
  const messageBytes = prefix.length - PREFIX_BYTES + length;
  assertWithin(messageBytes, writeMaxBytes);
  prefix[0] = 0;
  prefix.writeUInt32BE(messageBytes, 1);
  prefix[PREFIX_BYTES] = lengthDelimitedTag(field);
  writeVarint(prefix, PREFIX_BYTES + 1, length);
  return [prefix, ...pieces.filter((p) => p.byteLength > 0)];
}

/** Bytes a bytes-field message adds around its value (tag and length varint, at most 6 for a value under 4 GiB). */
export const BYTES_FIELD_OVERHEAD = 6;

function assertWithin(messageBytes: number, writeMaxBytes: number): void {
  if (messageBytes > writeMaxBytes) {
    throw new ConnectError(`message size ${messageBytes} is larger than configured writeMaxBytes ${writeMaxBytes}`, Code.ResourceExhausted);
  }
}

function writeVarint(out: Buffer, at: number, value: number): void {
  while (value >= 0x80) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at] = value;
}
