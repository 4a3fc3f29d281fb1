/**
 * The three ways the benchmark moves the payload, behind one interface:
 *  - direct S3 with the AWS SDK (the baseline: what the service itself does against S3),
 *  - the service over gRPC with connect-node,
 *  - the service over gRPC with @grpc/grpc-js (optional).
 * Downloads are hashed as they arrive and never buffered; uploads read the payload block by block.
 */
import { Readable } from "node:stream";
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  DeleteFileRequestSchema,
  DeleteFileResponseSchema,
  DownloadFileRequestSchema,
  DownloadFileResponseSchema,
  FilePurpose,
  FilesService,
  GetFileRequestSchema,
  GetFileResponseSchema,
  ListFilesRequestSchema,
  ListFilesResponseSchema,
  UploadFileRequestSchema,
  UploadFileResponseSchema,
  type DownloadFileResponse,
  type File,
  type UploadFileRequest,
  type UploadFileResponse,
} from "../gen/ts/files/v1/files_pb.js";
import { MiB, StreamDigest, type Payload } from "./payload.js";
import { PART_SIZE, QUEUE_SIZE, s3Client, type S3Target } from "./s3.js";

export interface Transferred {
  bytes: number;
  /** Lowercase hex SHA-256: of the bytes received (downloads) or as the service reported it (uploads). */
  sha256?: string;
  /** Data messages (service) or body chunks (S3) a download arrived in. */
  chunks?: number;
}

export interface BenchClient {
  readonly name: string;
  /** Uploads the payload; resolves with the object key or file id to download it by. */
  upload(payload: Payload, sha256: string): Promise<{ id: string } & Transferred>;
  download(id: string): Promise<Transferred>;
  remove(id: string): Promise<void>;
  close(): void;
}

/** Bytes per UploadFileRequest chunk (and the server's DownloadFileResponse chunk size). */
export const CHUNK_SIZE = MiB;

/**
 * The baseline: a streamed GetObject, and either one streamed PutObject ("put") or lib-storage's
 * multipart Upload with the server's part size and concurrency ("multipart", as the server does it).
 */
export function directS3Client(target: S3Target, mode: "put" | "multipart" = "put"): BenchClient {
  const client = s3Client(target);
  let counter = 0;
  return {
    name: mode === "put" ? "direct S3 (PutObject)" : "direct S3 (multipart Upload)",
    async upload(payload) {
      const key = `direct/${Date.now()}-${counter++}.bin`;
      if (mode === "put") {
        await client.send(
          new PutObjectCommand({
            Bucket: target.bucket,
            Key: key,
            Body: Readable.from(payload.blocks()),
            ContentLength: payload.bytes,
            ContentType: "application/octet-stream",
          }),
        );
        return { id: key, bytes: payload.bytes };
      }
      const upload = new Upload({
        client,
        queueSize: QUEUE_SIZE,
        partSize: PART_SIZE,
        leavePartsOnError: false,
        params: {
          Bucket: target.bucket,
          Key: key,
          Body: Readable.from(payload.blocks()),
          ContentType: "application/octet-stream",
        },
      });
      await upload.done();
      return { id: key, bytes: payload.bytes };
    },
    async download(key) {
      const out = await client.send(new GetObjectCommand({ Bucket: target.bucket, Key: key }));
      const digest = new StreamDigest();
      let chunks = 0;
      for await (const chunk of out.Body as Readable) {
        digest.update(chunk as Buffer);
        chunks++;
      }
      return { bytes: digest.bytes, sha256: digest.digest(), chunks };
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: target.bucket, Key: key }));
    },
    close: () => client.destroy(),
  };
}

type MetadataInit = MessageInitShape<typeof UploadFileRequestSchema>;

/** The upload request stream: metadata first, then one chunk message per payload block. */
function* uploadRequests(payload: Payload, sha256: string): Generator<MetadataInit> {
  yield {
    payload: {
      case: "metadata",
      value: {
        filename: "bench.bin",
        purpose: FilePurpose.USER_DATA,
        mimeType: "application/octet-stream",
        sizeBytes: BigInt(payload.bytes),
        sha256,
      },
    },
  };
  for (const block of payload.blocks()) yield { payload: { case: "chunk", value: block } };
}

/**
 * connect-node over gRPC (HTTP/2), with its default transport settings: those advertise
 * gzip and brotli in grpc-accept-encoding. With `identityOnly` the client accepts no
 * compression, so the server must send the bytes as they are (a diagnostic variant).
 */
/** Raises the connection-level window too, which connect-node leaves at Node's 64 KiB default. */
class WideWindowSessionManager extends Http2SessionManager {
  override async request(...args: Parameters<Http2SessionManager["request"]>): ReturnType<Http2SessionManager["request"]> {
    const stream = await super.request(...args);
    stream.session?.setLocalWindowSize(16 * MiB);
    return stream;
  }
}

/**
 * A connect-node FilesService client on one HTTP/2 connection of its own; close() ends it. An
 * https:// baseUrl is TLS, trusting `ca` (PEM) only.
 */
export function connectFilesClient(baseUrl: string, identityOnly = false, ca?: Buffer) {
  // Our own session manager, so close() can end the connection, and with a 16 MiB stream window:
  // Node's default 64 KiB window makes every download chunk wait for a WINDOW_UPDATE round trip.
  const sessionManager = new WideWindowSessionManager(baseUrl, undefined, { settings: { initialWindowSize: 16 * MiB }, ...(ca && { ca }) });
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    readMaxBytes: 16 * MiB,
    writeMaxBytes: 16 * MiB,
    ...(identityOnly && { acceptCompression: [] }),
  });
  return { client: createClient(FilesService, transport), close: () => sessionManager.abort() };
}

export function connectGrpcClient(baseUrl: string, identityOnly = false, ca?: Buffer): BenchClient {
  const { client, close } = connectFilesClient(baseUrl, identityOnly, ca);
  return {
    name: `service (connect-node gRPC${identityOnly ? ", identity only" : ""})`,
    async upload(payload, sha256) {
      const res = await client.uploadFile(
        (async function* () {
          yield* uploadRequests(payload, sha256);
        })(),
      );
      const file = res.file;
      if (!file) throw new Error("UploadFile returned no file");
      return { id: file.id, bytes: Number(file.bytes), sha256: file.sha256 };
    },
    async download(fileId) {
      const digest = new StreamDigest();
      let chunks = 0;
      for await (const msg of client.downloadFile({ fileId })) {
        if (msg.payload.case !== "chunk") continue;
        digest.update(msg.payload.value);
        chunks++;
      }
      return { bytes: digest.bytes, sha256: digest.digest(), chunks };
    },
    async remove(fileId) {
      await client.deleteFile({ fileId });
    },
    close,
  };
}

// @grpc/grpc-js moves raw bytes; protobuf-es supplies the (de)serializers.
function method<I extends DescMessage, O extends DescMessage>(
  name: string,
  input: I,
  output: O,
  requestStream: boolean,
  responseStream: boolean,
): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path: `/${FilesService.typeName}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: (m) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b) => fromBinary(input, b),
    responseSerialize: (m) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b) => fromBinary(output, b),
  };
}

const uploadMethod = method("UploadFile", UploadFileRequestSchema, UploadFileResponseSchema, true, false);
const downloadMethod = method("DownloadFile", DownloadFileRequestSchema, DownloadFileResponseSchema, false, true);
const deleteMethod = method("DeleteFile", DeleteFileRequestSchema, DeleteFileResponseSchema, false, false);
const getMethod = method("GetFile", GetFileRequestSchema, GetFileResponseSchema, false, false);
const listMethod = method("ListFiles", ListFilesRequestSchema, ListFilesResponseSchema, false, false);

/**
 * The Files RPCs the bench uses, over @grpc/grpc-js on one HTTP/2 connection of its own; an
 * https:// baseUrl is TLS, trusting `ca` only.
 */
export function grpcJsFilesClient(baseUrl: string, ca?: Buffer) {
  const url = new URL(baseUrl);
  const credentials = url.protocol === "https:" ? grpc.credentials.createSsl(ca ?? null) : grpc.credentials.createInsecure();
  const client = new grpc.Client(url.host, credentials, {
    "grpc.max_receive_message_length": 16 * MiB,
    "grpc-node.flow_control_window": 16 * MiB,
    "grpc.max_send_message_length": 16 * MiB,
  });
  function unary<I, O>(m: grpc.MethodDefinition<I, O>, request: I) {
    return new Promise<O>((resolve, reject) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, (err, res) => (err || !res ? reject(err ?? new Error(`${m.path}: no response`)) : resolve(res)));
    });
  }
  return {
    /** UploadFile: the messages in order, honouring HTTP/2 flow control; resolves with the stored file. */
    uploadFile(messages: Iterable<MessageInitShape<typeof UploadFileRequestSchema>>): Promise<File> {
      return new Promise((resolve, reject) => {
        const call = client.makeClientStreamRequest<UploadFileRequest, UploadFileResponse>(
          uploadMethod.path,
          uploadMethod.requestSerialize,
          uploadMethod.responseDeserialize,
          (err, res) => (err ? reject(err) : res?.file ? resolve(res.file) : reject(new Error("UploadFile returned no file"))),
        );
        (async () => {
          for (const init of messages) {
            if (!call.write(create(UploadFileRequestSchema, init))) await new Promise((r) => call.once("drain", r));
          }
          call.end();
        })().catch((err: unknown) => {
          call.cancel();
          reject(err);
        });
      });
    },
    downloadFile(fileId: string): AsyncIterable<DownloadFileResponse> {
      return client.makeServerStreamRequest(
        downloadMethod.path,
        downloadMethod.requestSerialize,
        downloadMethod.responseDeserialize,
        create(DownloadFileRequestSchema, { fileId }),
      ) as AsyncIterable<DownloadFileResponse>;
    },
    getFile: (fileId: string) => unary(getMethod, create(GetFileRequestSchema, { fileId })),
    listFiles: (limit: number, after: string) => unary(listMethod, create(ListFilesRequestSchema, { limit, after })),
    deleteFile: (fileId: string) => unary(deleteMethod, create(DeleteFileRequestSchema, { fileId })),
    close: () => client.close(),
  };
}

/** @grpc/grpc-js, the other common Node gRPC client. */
export function grpcJsBenchClient(baseUrl: string, ca?: Buffer): BenchClient {
  const client = grpcJsFilesClient(baseUrl, ca);
  return {
    name: "service (@grpc/grpc-js)",
    async upload(payload, sha256) {
      const file = await client.uploadFile(uploadRequests(payload, sha256));
      return { id: file.id, bytes: Number(file.bytes), sha256: file.sha256 };
    },
    async download(fileId) {
      const digest = new StreamDigest();
      let chunks = 0;
      for await (const msg of client.downloadFile(fileId)) {
        if (msg.payload.case !== "chunk") continue;
        digest.update(msg.payload.value);
        chunks++;
      }
      return { bytes: digest.bytes, sha256: digest.digest(), chunks };
    },
    async remove(fileId) {
      await client.deleteFile(fileId);
    },
    close: () => client.close(),
  };
}
