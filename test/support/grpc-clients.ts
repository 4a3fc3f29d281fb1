import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  DeleteFileRequestSchema,
  DownloadFileRequestSchema,
  FilesService,
  GetFileRequestSchema,
  ListFilesRequestSchema,
  UploadFileRequestSchema,
  type DeleteFileResponse,
  type DownloadFileResponse,
  type File,
  type GetFileResponse,
  type ListFilesResponse,
  type UploadFileMetadata,
  type UploadFileRequest,
  type UploadFileResponse,
} from "../../gen/ts/files/v1/files_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

export type MetadataInit = MessageInitShape<typeof import("../../gen/ts/files/v1/files_pb.js").UploadFileMetadataSchema>;
type DownloadInit = MessageInitShape<typeof DownloadFileRequestSchema>;
type ListInit = MessageInitShape<typeof ListFilesRequestSchema>;

/** The calls the scenarios need, so one scenario suite runs against each gRPC implementation. */
export interface FilesTestClient {
  readonly name: string;
  upload(metadata: MetadataInit, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, signal?: AbortSignal): Promise<File>;
  download(request: DownloadInit): Promise<{ file: File | undefined; data: Buffer; messages: number }>;
  get(fileId: string): Promise<File>;
  list(request: ListInit): Promise<ListFilesResponse>;
  delete(fileId: string): Promise<DeleteFileResponse>;
  close(): void;
}

async function* uploadMessages(metadata: MetadataInit, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
  yield create(UploadFileRequestSchema, { payload: { case: "metadata", value: metadata as UploadFileMetadata } });
  for await (const chunk of chunks) yield create(UploadFileRequestSchema, { payload: { case: "chunk", value: chunk } });
}

function collectDownload(messages: DownloadFileResponse[] | Buffer[], file: File | undefined, count: number) {
  return { file, data: Buffer.concat(messages as Buffer[]), messages: count };
}

/** connect-node, speaking gRPC (HTTP/2), gRPC-Web or Connect (HTTP/1.1). */
export function connectClient(baseUrl: string, protocol: "grpc" | "grpc-web" | "connect" = "grpc"): FilesTestClient {
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl, readMaxBytes: 16 << 20, writeMaxBytes: 16 << 20 })
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", readMaxBytes: 16 << 20, writeMaxBytes: 16 << 20 })
        : createConnectTransport({ baseUrl, httpVersion: "1.1", readMaxBytes: 16 << 20, writeMaxBytes: 16 << 20 });
  const client: Client<typeof FilesService> = createClient(FilesService, transport);
  return {
    name: `connect-node (${protocol})`,
    async upload(metadata, chunks, signal) {
      const res = await client.uploadFile(uploadMessages(metadata, chunks), { signal });
      return res.file!;
    },
    async download(request) {
      let file: File | undefined;
      const data: Buffer[] = [];
      let count = 0;
      for await (const msg of client.downloadFile(request)) {
        count++;
        if (msg.payload.case === "file") file = msg.payload.value;
        else if (msg.payload.case === "chunk") data.push(Buffer.from(msg.payload.value));
      }
      return collectDownload(data, file, count);
    },
    get: async (fileId) => (await client.getFile({ fileId })).file!,
    list: (request) => client.listFiles(request),
    delete: (fileId) => client.deleteFile({ fileId }),
    close: () => {},
  };
}

// @grpc/grpc-js speaks raw bytes; protobuf-es supplies the (de)serializers from the generated schemas.
function serializers<I extends DescMessage, O extends DescMessage>(input: I, output: O) {
  return {
    requestSerialize: (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: MessageShape<O>) => Buffer.from(toBinary(output, m)),
    responseDeserialize: (b: Buffer) => fromBinary(output, b),
  };
}

function grpcJsDefinition(): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of FilesService.methods) {
    definition[method.localName] = {
      path: `/${FilesService.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      originalName: method.name,
      ...serializers(method.input, method.output),
    } as grpc.MethodDefinition<object, object>;
  }
  return definition as grpc.ServiceDefinition;
}

type Unary<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

/** @grpc/grpc-js, a second and independent gRPC implementation. */
export function grpcJsClient(baseUrl: string): FilesTestClient {
  return grpcJsClientWith(baseUrl.replace(/^http:\/\//, ""), grpc.credentials.createInsecure());
}

/** @grpc/grpc-js to `target` (host:port) with the given channel credentials (TLS, for one). */
export function grpcJsClientWith(target: string, credentials: grpc.ChannelCredentials): FilesTestClient {
  const Ctor = grpc.makeGenericClientConstructor(grpcJsDefinition(), "FilesService");
  const client = new Ctor(target, credentials, {
    "grpc.max_receive_message_length": 16 << 20,
    "grpc-node.flow_control_window": 16 << 20,
    "grpc.max_send_message_length": 16 << 20,
  }) as unknown as Record<string, unknown> & grpc.Client;
  const unary = <Req, Res>(name: string, req: Req) =>
    new Promise<Res>((resolve, reject) =>
      (client[name] as Unary<Req, Res>).call(client, req, (err, res) => (err ? reject(err) : resolve(res!))),
    );
  return {
    name: "@grpc/grpc-js",
    upload(metadata, chunks, signal) {
      return new Promise<File>((resolve, reject) => {
        const call = (client.uploadFile as (cb: (err: grpc.ServiceError | null, res?: UploadFileResponse) => void) => grpc.ClientWritableStream<UploadFileRequest>).call(
          client,
          (err, res) => (err ? reject(err) : resolve(res!.file!)),
        );
        signal?.addEventListener("abort", () => call.cancel(), { once: true });
        (async () => {
          for await (const msg of uploadMessages(metadata, chunks)) {
            if (signal?.aborted) return;
            if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
          }
          call.end();
        })().catch(reject);
      });
    },
    async download(request) {
      const call = (client.downloadFile as (req: object) => grpc.ClientReadableStream<DownloadFileResponse>).call(
        client,
        create(DownloadFileRequestSchema, request),
      );
      let file: File | undefined;
      const data: Buffer[] = [];
      let count = 0;
      for await (const msg of call as AsyncIterable<DownloadFileResponse>) {
        count++;
        if (msg.payload.case === "file") file = msg.payload.value;
        else if (msg.payload.case === "chunk") data.push(Buffer.from(msg.payload.value));
      }
      return collectDownload(data, file, count);
    },
    get: async (fileId) => (await unary<object, GetFileResponse>("getFile", create(GetFileRequestSchema, { fileId }))).file!,
    list: (request) => unary<object, ListFilesResponse>("listFiles", create(ListFilesRequestSchema, request)),
    delete: (fileId) => unary<object, DeleteFileResponse>("deleteFile", create(DeleteFileRequestSchema, { fileId })),
    close: () => client.close(),
  };
}

/** A gRPC status code from either client's error, as a number. */
export function grpcCode(err: unknown): number | undefined {
  const e = err as { code?: unknown };
  return typeof e?.code === "number" ? e.code : undefined;
}
