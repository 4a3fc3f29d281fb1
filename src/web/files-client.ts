import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FilesService } from "../../gen/ts/files/v1/files_pb.js";

export type FilesClient = Client<typeof FilesService>;

/**
 * A FilesService client over the Connect protocol to the origin that served the page.
 * Binary protobuf keeps file parts as raw bytes rather than base64 in JSON.
 */
export function createFilesClient(apiKey: () => string): FilesClient {
  const authorize: Interceptor = (next) => (req) => {
    const key = apiKey().trim();
    if (key !== "") req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: location.origin, useBinaryFormat: true, interceptors: [authorize] });
  return createClient(FilesService, transport);
}

/** The server's own message and code, for the status region. */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  return `${e.rawMessage} (${Code[e.code] ?? e.code})`;
}

export function isCancel(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}
