import { describe, expect, it } from "vitest";
import { isNotImplemented, S3Capabilities } from "../../src/storage/s3-capabilities.js";

const notImplemented = Object.assign(new Error("A header you provided implies functionality that is not implemented."), {
  name: "NotImplemented",
  $metadata: { httpStatusCode: 501 },
});

describe("S3Capabilities", () => {
  it("takes 501 and the NotImplemented code for a missing operation, and nothing else", () => {
    expect(isNotImplemented(notImplemented)).toBe(true);
    expect(isNotImplemented(Object.assign(new Error("UnknownError"), { $metadata: { httpStatusCode: 501 } }))).toBe(true); // a bare Jetty 501 page
    expect(isNotImplemented(Object.assign(new Error("x"), { name: "NotImplemented" }))).toBe(true);
    expect(isNotImplemented(Object.assign(new Error("SlowDown"), { name: "SlowDown", $metadata: { httpStatusCode: 503 } }))).toBe(false);
    expect(isNotImplemented(Object.assign(new Error("NoSuchUpload"), { $metadata: { httpStatusCode: 404 } }))).toBe(false);
    expect(isNotImplemented(new Error("ECONNRESET"))).toBe(false);
    expect(isNotImplemented(undefined)).toBe(false);
  });

  it("records a missing operation and reports it once, with what is done instead", () => {
    const reported: [string, string][] = [];
    const caps = new S3Capabilities((feature, fallback) => reported.push([feature, fallback]));
    expect(caps.has("UploadPartCopy")).toBe(true);
    expect(caps.lacks("UploadPartCopy", new Error("timeout"))).toBe(false);
    expect(caps.has("UploadPartCopy")).toBe(true);
    expect(caps.lacks("UploadPartCopy", notImplemented)).toBe(true);
    expect(caps.lacks("UploadPartCopy", notImplemented)).toBe(true);
    expect(caps.has("UploadPartCopy")).toBe(false);
    expect(caps.has("ListParts")).toBe(true);
    expect(reported).toHaveLength(1);
    expect(reported[0]![0]).toBe("UploadPartCopy");
    expect(reported[0]![1]).toMatch(/streaming their parts/);
    expect(caps.unsupported).toEqual(["UploadPartCopy"]);
  });
});
