import type { NodeHandlerFn } from "./http-handler.js";

type HeaderBag = Record<string, string | string[] | number | undefined>;

/**
 * connect-es percent-encodes `grpc-message` with encodeURIComponent, while @grpc/grpc-js decodes
 * it with decodeURI, so every ':' and ',' in an error reached grpc-js users as "%3A" and "%2C".
 * The gRPC spec escapes only '%' and bytes outside printable ASCII; re-encoding that way reads
 * correctly in every client.
 */
export function withSpecGrpcMessageEncoding(handler: NodeHandlerFn): NodeHandlerFn {
  return (req, res) => {
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => unknown;
    (res as { writeHead: unknown }).writeHead = (status: number, ...rest: unknown[]) => {
      const headers = rest.find((arg): arg is HeaderBag => typeof arg === "object" && arg !== null && !Array.isArray(arg));
      if (headers) fixMessage(headers);
      return writeHead(status, ...rest);
    };
    const addTrailers = res.addTrailers.bind(res) as (trailers: HeaderBag) => void;
    (res as { addTrailers: unknown }).addTrailers = (trailers: HeaderBag) => {
      fixMessage(trailers);
      addTrailers(trailers);
    };
    handler(req, res);
  };
}

function fixMessage(headers: HeaderBag): void {
  const value = headers["grpc-message"];
  if (typeof value === "string") headers["grpc-message"] = encodeGrpcMessage(decodeLoosely(value));
}

function decodeLoosely(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
