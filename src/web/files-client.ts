import { Code, ConnectError } from "@connectrpc/connect";
import { FilesError } from "../../clients/ts/src/errors.js";
import type { FilesClient } from "../../clients/ts/src/files-client.js";
import { connectWeb } from "../../clients/ts/src/web.js";

export type { FilesClient };

/**
 * The client library over the Connect protocol (binary, so parts travel as raw bytes rather than
 * base64 in JSON) to the origin that served the page, with the key from the page's field.
 */
export function createFilesClient(apiKey: () => string): FilesClient {
  return connectWeb({ token: apiKey });
}

/** The server's own message and code, for the status region. */
export function describeError(err: unknown): string {
  if (err instanceof FilesError) return `${err.message} (${err.codeName})`;
  const e = ConnectError.from(err);
  return `${e.rawMessage} (${Code[e.code] ?? e.code})`;
}

export function isCancel(err: unknown): boolean {
  return (err instanceof FilesError ? err.code : ConnectError.from(err).code) === Code.Canceled;
}
