import { describe, expect, it } from "vitest";
import { isSaneRequestId, newRequestId, requestIdFrom } from "../../src/observability/request-id.js";
import { transportOf } from "../../src/transport/connect/observe-interceptor.js";

describe("request ids", () => {
  it("keeps a caller's id made of 1 to 128 visible ASCII characters", () => {
    for (const id of ["a", "req-123", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "!~#$%&'()*+,-./:;<=>?@[\\]^_`{|}", "x".repeat(128)]) {
      expect(isSaneRequestId(id)).toBe(true);
      expect(requestIdFrom(id)).toBe(id);
    }
  });

  it("replaces an empty, long, spaced, control-character or non-ASCII id with a new one", () => {
    for (const id of ["", "x".repeat(129), "two words", "tab\there", "line\nbreak", "nul\u0000", "del\u007f", "café", "\u{1f600}"]) {
      expect(isSaneRequestId(id)).toBe(false);
      const replaced = requestIdFrom(id);
      expect(replaced).not.toBe(id);
      expect(replaced).toMatch(/^[0-9a-f]{32}$/);
    }
  });

  it("generates one when there is no header, and takes the first of repeated headers", () => {
    expect(requestIdFrom(undefined)).toMatch(/^[0-9a-f]{32}$/);
    expect(requestIdFrom(null)).toMatch(/^[0-9a-f]{32}$/);
    expect(requestIdFrom(["first", "second"])).toBe("first");
    expect(requestIdFrom([])).toMatch(/^[0-9a-f]{32}$/);
  });

  it("generates 16 random bytes as hex, different each time", () => {
    // Several times the ids drawn from one batch of random bytes: none repeats across batches.
    const ids = new Set(Array.from({ length: 5000 }, newRequestId));
    expect(ids.size).toBe(5000);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("RPC transport from the content-type", () => {
  it.each([
    ["application/grpc", "grpc"],
    ["application/grpc+proto", "grpc"],
    ["application/grpc-web+proto", "grpc_web"],
    ["application/grpc-web-text", "grpc_web"],
    ["Application/GRPC-Web", "grpc_web"],
    ["application/proto", "connect"],
    ["application/connect+proto", "connect"],
    ["application/json", "connect"],
    [null, "connect"],
  ] as const)("%s → %s", (contentType, transport) => {
    expect(transportOf(contentType)).toBe(transport);
  });
});
