import { toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { DownloadFileResponseSchema, type DownloadFileResponse } from "../../../gen/ts/files/v1/files_pb.js";

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

/**
 * Encodes one response message as a gRPC length-prefixed message, in pieces to be written in
 * order. A download chunk becomes two pieces: the envelope and field prefix (a few bytes), then
 * the chunk itself, so file bytes are never copied into a message buffer.
 */
export function encodeEnvelope<D extends DescMessage>(schema: D, message: MessageShape<D>, writeMaxBytes: number): Uint8Array[] {
  const bulk = BULK_BYTES[schema.typeName]?.(message);
  if (bulk) {
    const length = bulk.bytes.byteLength;
    const tag = lengthDelimitedTag(bulk.field);
    const prefix = Buffer.allocUnsafe(PREFIX_BYTES + 1 + varintSize(length));
    const messageBytes = prefix.length - PREFIX_BYTES + length;
    assertWithin(messageBytes, writeMaxBytes);
    prefix[0] = 0;
    prefix.writeUInt32BE(messageBytes, 1);
    prefix[PREFIX_BYTES] = tag;
    writeVarint(prefix, PREFIX_BYTES + 1, length);
    return length === 0 ? [prefix] : [prefix, bulk.bytes];
  }
  const bytes = toBinary(schema, message);
  assertWithin(bytes.byteLength, writeMaxBytes);
  const out = Buffer.allocUnsafe(PREFIX_BYTES + bytes.byteLength);
  out[0] = 0;
  out.writeUInt32BE(bytes.byteLength, 1);
  out.set(bytes, PREFIX_BYTES);
  return [out];
}

function assertWithin(messageBytes: number, writeMaxBytes: number): void {
  if (messageBytes > writeMaxBytes) {
    throw new ConnectError(`message size ${messageBytes} is larger than configured writeMaxBytes ${writeMaxBytes}`, Code.ResourceExhausted);
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, value: number): void {
  while (value >= 0x80) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at] = value;
}
