import { describe, expect, it } from "vitest";
import { encodeGrpcMessage } from "../../src/transport/grpc-message-encoding.js";

describe("grpc-message encoding (gRPC spec: escape only '%' and bytes outside printable ASCII)", () => {
  it("leaves printable ASCII, including ':' and ',', as it is", () => {
    expect(encodeGrpcMessage("No such file: 'file-1', sorry")).toBe("No such file: 'file-1', sorry");
  });

  it("escapes '%', control characters and UTF-8 bytes, and decodeURI and decodeURIComponent both read it back", () => {
    const message = "100% done\r\n: naïve 文件";
    const encoded = encodeGrpcMessage(message);
    expect(encoded).toBe("100%25 done%0D%0A: na%C3%AFve %E6%96%87%E4%BB%B6");
    expect(decodeURI(encoded)).toBe(message); // what @grpc/grpc-js does
    expect(decodeURIComponent(encoded)).toBe(message); // what connect-es does
  });
});
