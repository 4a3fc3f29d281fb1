import {
  GetFileResponseSchema,
  ListFilesResponseSchema,
  UploadFileResponseSchema,
  type File,
  type GetFileResponse,
  type ListFilesResponse,
} from "../../../gen/ts/files/v1/files_pb.js";

/**
 * The wire form of the messages that carry file metadata (ListFiles pages, GetFile, UploadFile),
 * written straight from the generated message types: the same bytes as protobuf-es's toBinary
 * (a differential test holds it to that), at a fraction of its cost. toBinary walks the schema for
 * every field of every message and grows its buffer in chunks; a page of 100 files cost about
 * 70 µs there, the largest share of what a ListFiles page costs over gRPC beyond REST's JSON
 * (BENCHMARKS.md, "Per call"). Anything this does not know how to write exactly (unknown fields)
 * answers undefined, and the caller uses toBinary.
 */
export type FastEncoder = (message: unknown) => Uint8Array | undefined;

export const FILE_MESSAGE_ENCODERS: Record<string, FastEncoder> = {
  [ListFilesResponseSchema.typeName]: (message) => encodeListFilesResponse(message as ListFilesResponse),
  [GetFileResponseSchema.typeName]: (message) => encodeFileHolder(message as GetFileResponse),
  [UploadFileResponseSchema.typeName]: (message) => encodeFileHolder(message as GetFileResponse),
};

interface Unknowns {
  $unknown?: unknown[];
}
const hasUnknown = (m: object) => ((m as Unknowns).$unknown?.length ?? 0) > 0;

function encodeListFilesResponse(m: ListFilesResponse): Uint8Array | undefined {
  if (hasUnknown(m) || m.data.some(hasUnknown)) return undefined;
  const lengths: number[] = [];
  const sizes = m.data.map((f) => fileSize(f, lengths));
  let size = 0;
  for (const s of sizes) size += 1 + varintSize(s) + s;
  if (m.hasMore) size += 2;
  if (m.firstId !== undefined) size += stringFieldSize(m.firstId, lengths);
  if (m.lastId !== undefined) size += stringFieldSize(m.lastId, lengths);
  const w = new Writer(size, lengths);
  m.data.forEach((file, i) => {
    w.tag(1, 2);
    w.varint(sizes[i]!);
    writeFile(w, file);
  });
  if (m.hasMore) {
    w.tag(2, 0);
    w.varint(1);
  }
  if (m.firstId !== undefined) w.stringField(3, m.firstId);
  if (m.lastId !== undefined) w.stringField(4, m.lastId);
  return w.done();
}

function encodeFileHolder(m: GetFileResponse): Uint8Array | undefined {
  if (hasUnknown(m) || (m.file && hasUnknown(m.file))) return undefined;
  if (!m.file) return new Uint8Array(0);
  const lengths: number[] = [];
  const s = fileSize(m.file, lengths);
  const w = new Writer(1 + varintSize(s) + s, lengths);
  w.tag(1, 2);
  w.varint(s);
  writeFile(w, m.file);
  return w.done();
}

/** Proto3: a scalar at its default is not written; an `optional` one is written whenever present. */
function fileSize(f: File, lengths: number[]): number {
  let size = 0;
  if (f.id !== "") size += stringFieldSize(f.id, lengths);
  if (f.bytes !== 0n) size += 1 + int64Size(f.bytes);
  if (f.createdAt !== 0n) size += 1 + int64Size(f.createdAt);
  if (f.expiresAt !== undefined) size += 1 + int64Size(f.expiresAt);
  if (f.filename !== "") size += stringFieldSize(f.filename, lengths);
  if (f.purpose !== 0) size += 1 + int32Size(f.purpose);
  if (f.mimeType !== "") size += stringFieldSize(f.mimeType, lengths);
  if (f.sha256 !== "") size += stringFieldSize(f.sha256, lengths);
  if (f.status !== 0) size += 1 + int32Size(f.status);
  return size;
}

function writeFile(w: Writer, f: File): void {
  if (f.id !== "") w.stringField(1, f.id);
  if (f.bytes !== 0n) w.int64Field(2, f.bytes);
  if (f.createdAt !== 0n) w.int64Field(3, f.createdAt);
  if (f.expiresAt !== undefined) w.int64Field(4, f.expiresAt);
  if (f.filename !== "") w.stringField(5, f.filename);
  if (f.purpose !== 0) w.int32Field(6, f.purpose);
  if (f.mimeType !== "") w.stringField(7, f.mimeType);
  if (f.sha256 !== "") w.stringField(8, f.sha256);
  if (f.status !== 0) w.int32Field(9, f.status);
}

/** Field numbers here are below 16: every tag is one byte. */
function stringFieldSize(s: string, lengths: number[]): number {
  const n = Buffer.byteLength(s, "utf8");
  lengths.push(n);
  return 1 + varintSize(n) + n;
}

/** Bytes of `n` (non-negative) as a protobuf varint. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** int32 and enums: a negative value is sign-extended to ten bytes, as protobuf writes it. */
const int32Size = (n: number) => (n < 0 ? 10 : varintSize(n));

function int64Size(v: bigint): number {
  // One conversion decides it: Number() rounds monotonically, so the result lies in
  // [0, MAX_SAFE_INTEGER] exactly when the value does, and is then exact.
  const n = Number(v);
  if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) return varintSize(n);
  return 10 - (v >= 0n ? leadingSevenBitGroupsFree(v) : 0);
}

/** For a positive value past 2^53: how many of ten varint bytes it leaves unused. */
function leadingSevenBitGroupsFree(v: bigint): number {
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return 10 - size;
}

/** Writes into one buffer of the exact size, computed beforehand. */
class Writer {
  private readonly buf: Buffer;
  private at = 0;
  private nextLength = 0;

  tag(field: number, wireType: number): void {
    this.buf[this.at++] = (field << 3) | wireType;
  }

  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.at++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.at++] = n;
  }

  /** Strings' UTF-8 lengths, in the order they are written, measured once by the size pass. */
  constructor(size: number, private readonly lengths: number[]) {
    this.buf = Buffer.allocUnsafe(size);
  }

  stringField(field: number, s: string): void {
    this.tag(field, 2);
    this.varint(this.lengths[this.nextLength++]!);
    this.at += this.buf.write(s, this.at, "utf8");
  }

  int32Field(field: number, n: number): void {
    this.tag(field, 0);
    if (n >= 0) this.varint(n);
    else this.bigVarint(BigInt.asUintN(64, BigInt(n)));
  }

  int64Field(field: number, v: bigint): void {
    this.tag(field, 0);
    const n = Number(v);
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) this.varint(n);
    else this.bigVarint(BigInt.asUintN(64, v));
  }

  private bigVarint(u: bigint): void {
    while (u >= 0x80n) {
      this.buf[this.at++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.at++] = Number(u);
  }

  done(): Uint8Array {
    if (this.at !== this.buf.length) throw new Error(`file message encoder wrote ${this.at} of ${this.buf.length} bytes`);
    return this.buf;
  }
}
