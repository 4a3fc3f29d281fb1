import { create, toBinary, type DescEnum, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionResponseSchema as ResponseV1Schema,
} from "../../../gen/ts/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionResponseSchema as ResponseV1alphaSchema,
} from "../../../gen/ts/grpc/reflection/v1alpha/reflection_pb.js";

/** A reflection request's oneof; v1 and v1alpha messages have the same shape. */
export type ReflectionQuery =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** A reflection response's oneof, as an init shape both versions accept. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Answers gRPC server reflection queries from protobuf-es descriptors: the services given, and
 * every file they are defined in plus those files' transitive imports.
 */
export class Reflector {
  private readonly services: string[];
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly messages = new Map<string, DescMessage>();
  /** "<extendee>#<number>" → the file declaring that extension. */
  private readonly extensions = new Map<string, DescFile>();
  private readonly encoded = new Map<DescFile, Uint8Array>();

  constructor(services: readonly DescService[]) {
    this.services = [...new Set(services.map((s) => s.typeName))].sort();
    for (const service of services) this.addFile(service.file);
  }

  answer(query: ReflectionQuery): ReflectionAnswer {
    switch (query.case) {
      case "fileByFilename": {
        const file = this.files.get(query.value);
        return file ? this.fileAnswer(file) : notFound(`file not found: ${query.value}`);
      }
      case "fileContainingSymbol": {
        const file = this.symbols.get(query.value.replace(/^\./, ""));
        return file ? this.fileAnswer(file) : notFound(`symbol not found: ${query.value}`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = query.value;
        const file = this.extensions.get(`${containingType.replace(/^\./, "")}#${extensionNumber}`);
        return file ? this.fileAnswer(file) : notFound(`extension not found: ${containingType} ${extensionNumber}`);
      }
      case "allExtensionNumbersOfType": {
        const name = query.value.replace(/^\./, "");
        if (!this.messages.has(name)) return notFound(`type not found: ${query.value}`);
        const prefix = `${name}#`;
        const numbers = [...this.extensions.keys()].filter((k) => k.startsWith(prefix)).map((k) => Number(k.slice(prefix.length)));
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: name, extensionNumber: numbers } };
      }
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.services.map((name) => ({ name })) } };
      default:
        // Same as grpc-go: a request without a query is a broken client, so the stream ends.
        throw new ConnectError("reflection request names no query", Code.InvalidArgument);
    }
  }

  /** The file first, then its transitive imports, each once (clients need all of them to link it). */
  private fileAnswer(file: DescFile): ReflectionAnswer {
    const ordered: DescFile[] = [];
    const seen = new Set<DescFile>();
    const visit = (f: DescFile) => {
      if (seen.has(f)) return;
      seen.add(f);
      ordered.push(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: ordered.map((f) => this.encode(f)) } };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.files.has(name)) return;
    this.files.set(name, file);
    file.dependencies.forEach((dep) => this.addFile(dep));
    const packagePrefix = file.proto.package ? `${file.proto.package}.` : "";
    file.enums.forEach((e) => this.addEnum(file, e, packagePrefix));
    file.messages.forEach((m) => this.addMessage(file, m));
    for (const ext of file.extensions) {
      this.symbols.set(ext.typeName, file);
      this.extensions.set(`${ext.extendee.typeName}#${ext.number}`, file);
    }
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  private addMessage(file: DescFile, message: DescMessage): void {
    this.symbols.set(message.typeName, file);
    this.messages.set(message.typeName, message);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) this.symbols.set(`${message.typeName}.${oneof.name}`, file);
    message.nestedEnums.forEach((e) => this.addEnum(file, e, `${message.typeName}.`));
    message.nestedMessages.forEach((m) => this.addMessage(file, m));
    for (const ext of message.nestedExtensions) {
      this.symbols.set(ext.typeName, file);
      this.extensions.set(`${ext.extendee.typeName}#${ext.number}`, file);
    }
  }

  /** Enum values are scoped beside their enum, not inside it (C++ scoping rules). */
  private addEnum(file: DescFile, desc: DescEnum, scope: string): void {
    this.symbols.set(desc.typeName, file);
    for (const value of desc.values) this.symbols.set(`${scope}${value.name}`, file);
  }
}

function notFound(message: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } };
}

/**
 * Registers grpc.reflection.v1 and v1alpha (grpcurl asks v1 first, older tools only v1alpha).
 * Call it after every other service: it describes whatever the router holds at the first query.
 */
export function registerReflection(router: ConnectRouter): void {
  let reflector: Reflector | undefined;
  const get = () => (reflector ??= new Reflector(router.handlers.map((h) => h.service)));
  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ResponseV1Schema, { validHost: req.host, originalRequest: req, messageResponse: get().answer(req.messageRequest) });
      }
    },
  });
  router.service(ServerReflectionV1alpha, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ResponseV1alphaSchema, { validHost: req.host, originalRequest: req, messageResponse: get().answer(req.messageRequest) });
      }
    },
  });
}
