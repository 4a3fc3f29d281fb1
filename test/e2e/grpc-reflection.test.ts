/**
 * Server reflection and health checking, driven by the real grpcurl with no .proto files (as an
 * operator would), plus connect-node clients for what grpcurl cannot reach directly (Watch, and
 * reflection v1alpha, which grpcurl only falls back to when v1 is missing).
 */
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/ts/grpc/health/v1/health_pb.js";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as RequestV1Schema,
  type ServerReflectionResponse as ResponseV1,
} from "../../gen/ts/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as RequestV1alphaSchema,
  type ServerReflectionRequest as RequestV1alpha,
  type ServerReflectionResponse as ResponseV1alpha,
} from "../../gen/ts/grpc/reflection/v1alpha/reflection_pb.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { ensureGrpcurl, grpcurl, type GrpcurlResult } from "../support/grpcurl.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, rejection } from "../support/test-helpers.js";

/** stdout of a grpcurl run that must succeed; otherwise fails with everything it printed. */
function ok(r: GrpcurlResult): string {
  if (r.code !== 0) throw new Error(`grpcurl exited with ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  return r.stdout;
}

const target = (server: ServerProcess) => `127.0.0.1:${server.port}`;

/** Client-streaming calls take an async iterable. */
async function* each<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** Every request answered on one reflection stream (both versions share the message shapes). */
async function reflectV1alpha(baseUrl: string, requests: RequestV1alpha[]): Promise<ResponseV1alpha[]> {
  const client = createClient(ServerReflectionV1alpha, createGrpcTransport({ baseUrl }));
  const out: ResponseV1alpha[] = [];
  for await (const res of client.serverReflectionInfo(each(requests))) out.push(res);
  return out;
}

describe("gRPC server reflection and health, through grpcurl", () => {
  let server: ServerProcess;

  beforeAll(async () => {
    await ensureGrpcurl(); // first run builds it (~1 min); fails the suite if Go is missing
    const bucket = await createTestBucket("grpc-reflection");
    const dir = await tempDir("grpc-reflection");
    server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("lists the files service, health and both reflection versions", async () => {
    const services = ok(await grpcurl(target(server), [], ["list"])).split("\n").map((l) => l.trim());
    expect(services).toEqual(
      expect.arrayContaining([
        "files.v1.FilesService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]),
    );
    const methods = ok(await grpcurl(target(server), [], ["list", "files.v1.FilesService"]));
    for (const m of ["UploadFile", "DownloadFile", "GetFile", "ListFiles", "DeleteFile", "CreateUpload", "AddUploadPart", "CompleteUpload", "CancelUpload", "GetUpload"]) {
      expect(methods).toContain(`files.v1.FilesService.${m}`);
    }
  });

  it("describes the service, a method, a message and the reflection and health services themselves", async () => {
    const service = ok(await grpcurl(target(server), [], ["describe", "files.v1.FilesService"]));
    expect(service).toContain("files.v1.FilesService is a service");
    expect(service).toMatch(/rpc UploadFile \( stream \.files\.v1\.UploadFileRequest \) returns \( \.files\.v1\.UploadFileResponse \)/);
    expect(service).toMatch(/rpc DownloadFile \( \.files\.v1\.DownloadFileRequest \) returns \( stream \.files\.v1\.DownloadFileResponse \)/);

    const method = ok(await grpcurl(target(server), [], ["describe", "files.v1.FilesService.GetFile"]));
    expect(method).toContain("files.v1.FilesService.GetFile is a method");

    const file = ok(await grpcurl(target(server), [], ["describe", "files.v1.File"]));
    expect(file).toContain("files.v1.File is a message");
    for (const field of ["string id = 1;", "int64 bytes = 2;", "int64 created_at = 3;", "optional int64 expires_at = 4;", "string filename = 5;", ".files.v1.FilePurpose purpose = 6;", "string mime_type = 7;", "string sha256 = 8;", ".files.v1.FileStatus status = 9;"]) {
      expect(file).toContain(field);
    }

    const purpose = ok(await grpcurl(target(server), [], ["describe", "files.v1.FilePurpose"]));
    expect(purpose).toContain("FILE_PURPOSE_USER_DATA = 8;");

    const health = ok(await grpcurl(target(server), [], ["describe", "grpc.health.v1.Health"]));
    expect(health).toMatch(/rpc Watch \( \.grpc\.health\.v1\.HealthCheckRequest \) returns \( stream \.grpc\.health\.v1\.HealthCheckResponse \)/);
    const reflection = ok(await grpcurl(target(server), [], ["describe", "grpc.reflection.v1alpha.ServerReflection"]));
    expect(reflection).toContain("rpc ServerReflectionInfo ( stream .grpc.reflection.v1alpha.ServerReflectionRequest ) returns ( stream .grpc.reflection.v1alpha.ServerReflectionResponse )");

    const unknown = await grpcurl(target(server), [], ["describe", "files.v1.NoSuchThing"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("files.v1.NoSuchThing");
  });

  it("calls GetFile and ListFiles with no .proto file, and reports NotFound for an unknown id", async () => {
    const file = await connectClient(server.baseUrl).upload({ filename: "reflected.txt", purpose: FilePurpose.USER_DATA }, [Buffer.from("hello reflection\n")]);

    const got = JSON.parse(ok(await grpcurl(target(server), ["-d", JSON.stringify({ file_id: file.id })], ["files.v1.FilesService/GetFile"]))) as {
      file: Record<string, unknown>;
    };
    expect(got.file).toMatchObject({
      id: file.id,
      bytes: "17", // int64 in proto3 JSON is a string
      filename: "reflected.txt",
      purpose: "FILE_PURPOSE_USER_DATA",
      sha256: file.sha256,
      status: "FILE_STATUS_PROCESSED",
    });

    const listed = JSON.parse(ok(await grpcurl(target(server), ["-d", JSON.stringify({ limit: 100, order: "LIST_ORDER_DESC" })], ["files.v1.FilesService/ListFiles"]))) as {
      data: { id: string; filename: string }[];
    };
    expect(listed.data).toEqual(expect.arrayContaining([expect.objectContaining({ id: file.id, filename: "reflected.txt" })]));

    const missing = await grpcurl(target(server), ["-d", JSON.stringify({ file_id: "file-doesnotexist" })], ["files.v1.FilesService/GetFile"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("Code: NotFound");
  });

  it("Health/Check says SERVING for the server and the files service, NotFound for an unknown service", async () => {
    expect(JSON.parse(ok(await grpcurl(target(server), [], ["grpc.health.v1.Health/Check"])))).toEqual({ status: "SERVING" });
    const named = ok(await grpcurl(target(server), ["-d", JSON.stringify({ service: "files.v1.FilesService" })], ["grpc.health.v1.Health/Check"]));
    expect(JSON.parse(named)).toEqual({ status: "SERVING" });

    const unknown = await grpcurl(target(server), ["-d", JSON.stringify({ service: "no.such.Service" })], ["grpc.health.v1.Health/Check"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("Code: NotFound");
  });

  it("Health/Watch streams SERVING first, and SERVICE_UNKNOWN for an unknown service without ending the call", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    for (const service of ["", "files.v1.FilesService"]) {
      const abort = new AbortController();
      const stream = health.watch({ service }, { signal: abort.signal })[Symbol.asyncIterator]();
      const first = await stream.next();
      expect(first.done).toBe(false);
      expect(first.value?.status).toBe(Status.SERVING);
      abort.abort();
      await stream.return?.().catch(() => undefined);
    }

    const abort = new AbortController();
    const stream = health.watch({ service: "no.such.Service" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
    // Still open a moment later: nothing more arrives until the client cancels.
    const next = stream.next();
    const outcome = await Promise.race([next.then(() => "message"), new Promise((r) => setTimeout(() => r("open"), 1_000))]);
    expect(outcome).toBe("open");
    abort.abort();
    expect((await rejection(next)).code).toBe(Code.Canceled);
  });

  it("answers reflection v1alpha directly, several queries on one stream", async () => {
    const q = (messageRequest: RequestV1alpha["messageRequest"]) => create(RequestV1alphaSchema, { host: "h", messageRequest });
    const [services, bySymbol, byName, missing, extensions] = await reflectV1alpha(server.baseUrl, [
      q({ case: "listServices", value: "" }),
      q({ case: "fileContainingSymbol", value: "files.v1.File" }),
      q({ case: "fileByFilename", value: "grpc/health/v1/health.proto" }),
      q({ case: "fileByFilename", value: "no/such.proto" }),
      q({ case: "allExtensionNumbersOfType", value: "files.v1.File" }),
    ]);

    expect(services?.validHost).toBe("h");
    expect(services?.originalRequest?.messageRequest.case).toBe("listServices");
    expect(services?.messageResponse.case).toBe("listServicesResponse");
    const names = services?.messageResponse.case === "listServicesResponse" ? services.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual(expect.arrayContaining(["files.v1.FilesService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]));

    const decode = (r: ResponseV1alpha | undefined) => {
      if (r?.messageResponse.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${r?.messageResponse.case}`);
      return r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    };
    const [filesProto] = decode(bySymbol);
    expect(filesProto?.name).toBe("files/v1/files.proto");
    expect(filesProto?.package).toBe("files.v1");
    expect(filesProto?.service.map((s) => s.name)).toEqual(["FilesService"]);
    expect(filesProto?.messageType.find((m) => m.name === "File")?.field.map((f) => f.name)).toEqual([
      "id", "bytes", "created_at", "expires_at", "filename", "purpose", "mime_type", "sha256", "status",
    ]);
    // Every import a returned file names is in the same answer (clients need them all to link it).
    for (const response of [bySymbol, byName]) {
      const protos = decode(response);
      const returned = new Set(protos.map((p) => p.name));
      for (const p of protos) for (const dep of p.dependency) expect(returned, `${p.name} imports ${dep}`).toContain(dep);
    }
    expect(decode(byName)[0]?.package).toBe("grpc.health.v1");

    expect(missing?.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: Code.NotFound } });
    expect(extensions?.messageResponse).toMatchObject({ case: "allExtensionNumbersResponse", value: { baseTypeName: "files.v1.File", extensionNumber: [] } });
  });

  it("v1 and v1alpha describe the same files", async () => {
    const v1 = createClient(ServerReflectionV1, createGrpcTransport({ baseUrl: server.baseUrl }));
    const v1Responses: ResponseV1[] = [];
    const request = create(RequestV1Schema, { messageRequest: { case: "fileContainingSymbol", value: "files.v1.FilesService.UploadFile" } });
    for await (const res of v1.serverReflectionInfo(each([request]))) v1Responses.push(res);
    const [alpha] = await reflectV1alpha(server.baseUrl, [create(RequestV1alphaSchema, { messageRequest: { case: "fileContainingSymbol", value: "files.v1.FilesService.UploadFile" } })]);
    const bytes = (r: ResponseV1 | ResponseV1alpha | undefined) => (r?.messageResponse.case === "fileDescriptorResponse" ? r.messageResponse.value.fileDescriptorProto.map((b) => Buffer.from(b).toString("hex")) : undefined);
    expect(bytes(v1Responses[0])).toBeDefined();
    expect(bytes(v1Responses[0])).toEqual(bytes(alpha));
  });
});

describe("gRPC health follows readiness", () => {
  let moto: MotoServer;
  let server: ServerProcess;

  beforeAll(async () => {
    await ensureGrpcurl();
    moto = await startMoto(); // a private S3 this test may stop
    const s3 = new S3Client({ endpoint: moto.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "test", secretAccessKey: "test" } });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: "health" }));
    } finally {
      s3.destroy();
    }
    const dir = await tempDir("grpc-health");
    server = await startServer({
      config: s3ProviderConfig(moto.endpoint, "health", { type: "sqlite", db_path: `${dir}/files.db` }, { aws_access_key_id: "test", aws_secret_access_key: "test" }),
    });
  });

  afterAll(async () => {
    await server?.stop();
    await moto?.stop();
  });

  it("turns NOT_SERVING in Check and Watch once S3 is unreachable", async () => {
    expect(JSON.parse(ok(await grpcurl(target(server), [], ["grpc.health.v1.Health/Check"])))).toEqual({ status: "SERVING" });

    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const abort = new AbortController();
    const watch = health.watch({ service: "files.v1.FilesService" }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      expect((await watch.next()).value?.status).toBe(Status.SERVING);

      await moto.stop();

      // The watcher is told of the change without asking again.
      const change = await watch.next();
      expect(change.done).toBe(false);
      expect(change.value?.status).toBe(Status.NOT_SERVING);
    } finally {
      abort.abort();
      await watch.return?.().catch(() => undefined);
    }

    await eventually(async () => {
      expect(JSON.parse(ok(await grpcurl(target(server), [], ["grpc.health.v1.Health/Check"])))).toEqual({ status: "NOT_SERVING" });
    });
    const named = ok(await grpcurl(target(server), ["-d", JSON.stringify({ service: "files.v1.FilesService" })], ["grpc.health.v1.Health/Check"]));
    expect(JSON.parse(named)).toEqual({ status: "NOT_SERVING" });
    // Unknown names stay NotFound whatever the readiness.
    const unknown = await grpcurl(target(server), ["-d", JSON.stringify({ service: "no.such.Service" })], ["grpc.health.v1.Health/Check"]);
    expect(unknown.stderr).toContain("Code: NotFound");
  });
});
