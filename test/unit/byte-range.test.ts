import { describe, expect, it } from "vitest";
import { contentRange, parseRange } from "../../src/transport/rest/byte-range.js";

const none = { kind: "none" };
const unsatisfiable = { kind: "unsatisfiable" };
const range = (offset: number, length: number) => ({ kind: "range", offset, length });

describe("parseRange", () => {
  it("no header means the whole file", () => {
    expect(parseRange(undefined, 100)).toEqual(none);
  });

  it.each([
    ["bytes=0-9", range(0, 10)],
    ["bytes=10-19", range(10, 10)],
    ["bytes=99-99", range(99, 1)],
    ["bytes=0-0", range(0, 1)],
    ["bytes=0-99", range(0, 100)],
  ])("first-last: %s", (header, expected) => {
    expect(parseRange(header, 100)).toEqual(expected);
  });

  it("clips a last position past the end", () => {
    expect(parseRange("bytes=50-1000", 100)).toEqual(range(50, 50));
    expect(parseRange("bytes=0-100", 100)).toEqual(range(0, 100));
  });

  it("open-ended first-", () => {
    expect(parseRange("bytes=40-", 100)).toEqual(range(40, 60));
    expect(parseRange("bytes=0-", 100)).toEqual(range(0, 100));
    expect(parseRange("bytes=99-", 100)).toEqual(range(99, 1));
  });

  it("suffix -n", () => {
    expect(parseRange("bytes=-10", 100)).toEqual(range(90, 10));
    expect(parseRange("bytes=-100", 100)).toEqual(range(0, 100));
  });

  it("suffix larger than the file is the whole file", () => {
    expect(parseRange("bytes=-500", 100)).toEqual(range(0, 100));
  });

  it("-0 is unsatisfiable", () => {
    expect(parseRange("bytes=-0", 100)).toEqual(unsatisfiable);
  });

  it("first at or past the end is unsatisfiable", () => {
    expect(parseRange("bytes=100-", 100)).toEqual(unsatisfiable);
    expect(parseRange("bytes=100-200", 100)).toEqual(unsatisfiable);
    expect(parseRange("bytes=500-600", 100)).toEqual(unsatisfiable);
  });

  it("last before first is a syntax error and ignored", () => {
    expect(parseRange("bytes=20-10", 100)).toEqual(none);
    expect(parseRange("bytes=500-10", 100)).toEqual(none);
  });

  it("allows whitespace around the parts", () => {
    expect(parseRange("  bytes = 5 - 9  ", 100)).toEqual(range(5, 5));
    expect(parseRange("bytes=\t-10\t", 100)).toEqual(range(90, 10));
    expect(parseRange("bytes= 3-", 100)).toEqual(range(3, 97));
  });

  it("unit is case-insensitive", () => {
    expect(parseRange("BYTES=0-9", 100)).toEqual(range(0, 10));
    expect(parseRange("Bytes=-5", 100)).toEqual(range(95, 5));
  });

  it("leading zeros are still digits", () => {
    expect(parseRange("bytes=007-010", 100)).toEqual(range(7, 4));
  });

  it("multiple ranges serve the full representation", () => {
    expect(parseRange("bytes=0-9,20-29", 100)).toEqual(none);
    expect(parseRange("bytes=0-9, -5", 100)).toEqual(none);
    expect(parseRange("bytes=0-9,", 100)).toEqual(none);
  });

  it.each([
    "",
    "bytes",
    "bytes=",
    "bytes=-",
    "bytes=abc",
    "bytes=1-2-3",
    "bytes=a-b",
    "bytes=+1-5",
    "bytes=-+5",
    "bytes=1.5-3",
    "bytes=0x10-",
    "bytes=1e2-",
    "bytes=-1-5",
    "bytes 0-9",
    "bytes:0-9",
    "items=0-9",
    "bits=0-9",
    "bytesx=0-9",
    "=0-9",
    "0-9",
    "bytes=0-9 garbage",
    "bytes=\uff11-\uff19", // full-width digits
    "bytes=٠-٩", // Arabic-Indic digits
  ])("syntax error %j is ignored", (header) => {
    expect(parseRange(header, 100)).toEqual(none);
  });

  it("numbers beyond MAX_SAFE_INTEGER are a syntax error", () => {
    const huge = "9007199254740992"; // MAX_SAFE_INTEGER + 1
    expect(parseRange(`bytes=${huge}-`, 100)).toEqual(none);
    expect(parseRange(`bytes=0-${huge}`, 100)).toEqual(none);
    expect(parseRange(`bytes=-${huge}`, 100)).toEqual(none);
    expect(parseRange("bytes=0-99999999999999999999999", 100)).toEqual(none);
  });

  it("MAX_SAFE_INTEGER itself is accepted", () => {
    const max = String(Number.MAX_SAFE_INTEGER);
    expect(parseRange(`bytes=0-${max}`, 100)).toEqual(range(0, 100));
    expect(parseRange(`bytes=-${max}`, 100)).toEqual(range(0, 100));
    expect(parseRange(`bytes=${max}-`, 100)).toEqual(unsatisfiable);
  });

  describe("empty file", () => {
    it.each(["bytes=0-", "bytes=0-0", "bytes=0-10", "bytes=-1", "bytes=-10", "bytes=-0", "bytes=5-"])(
      "%s is unsatisfiable",
      (header) => {
        expect(parseRange(header, 0)).toEqual(unsatisfiable);
      },
    );

    it("still ignores invalid or absent headers", () => {
      expect(parseRange(undefined, 0)).toEqual(none);
      expect(parseRange("garbage", 0)).toEqual(none);
      expect(parseRange("bytes=0-1,2-3", 0)).toEqual(none);
    });
  });

  it("one-byte file", () => {
    expect(parseRange("bytes=0-", 1)).toEqual(range(0, 1));
    expect(parseRange("bytes=-1", 1)).toEqual(range(0, 1));
    expect(parseRange("bytes=-2", 1)).toEqual(range(0, 1));
    expect(parseRange("bytes=1-", 1)).toEqual(unsatisfiable);
  });
});

describe("contentRange", () => {
  it("formats first-last/size with an inclusive last", () => {
    expect(contentRange(0, 10, 100)).toBe("bytes 0-9/100");
    expect(contentRange(90, 10, 100)).toBe("bytes 90-99/100");
    expect(contentRange(5, 1, 6)).toBe("bytes 5-5/6");
  });

  it("round-trips parseRange results", () => {
    const result = parseRange("bytes=-500", 100);
    if (result.kind !== "range") throw new Error("expected a range");
    expect(contentRange(result.offset, result.length, 100)).toBe("bytes 0-99/100");
  });
});
