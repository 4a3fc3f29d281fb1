import { describe, expect, it } from "vitest";
import { contentDisposition } from "../../src/transport/rest/content-disposition.js";

const VALID_HEADER = /^[\x20-\x7e]*$/;

/** Splits the header into its quoted fallback and decoded filename* value. */
function parts(header: string): { fallback: string; extended: string } {
  const match = /^attachment; filename="([^"]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)$/.exec(header);
  if (!match) throw new Error(`unexpected header: ${header}`);
  return { fallback: match[1] ?? "", extended: decodeURIComponent(match[2] ?? "") };
}

describe("contentDisposition", () => {
  it("plain ASCII name", () => {
    expect(contentDisposition("report.pdf")).toBe(`attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`);
  });

  it("keeps spaces in the fallback and percent-encodes them in filename*", () => {
    expect(contentDisposition("my file.txt")).toBe(`attachment; filename="my file.txt"; filename*=UTF-8''my%20file.txt`);
  });

  it("replaces quotes and backslashes in the fallback", () => {
    const header = contentDisposition('a"b\\c.txt');
    expect(header).toMatch(VALID_HEADER);
    expect(parts(header)).toEqual({ fallback: "a_b_c.txt", extended: 'a"b\\c.txt' });
    expect(header).toContain("filename*=UTF-8''a%22b%5Cc.txt");
  });

  it("unicode name round-trips through filename*", () => {
    const name = "résumé 📄.pdf";
    const header = contentDisposition(name);
    expect(header).toMatch(VALID_HEADER);
    const { fallback, extended } = parts(header);
    expect(extended).toBe(name);
    // One "_" per code point, so the emoji's surrogate pair becomes a single "_".
    expect(fallback).toBe("r_sum_ _.pdf");
  });

  it.each([
    ["CRLF header injection", "evil.txt\r\nSet-Cookie: a=b"],
    ["bare LF", "a\nb"],
    ["bare CR", "a\rb"],
    ["NUL", "a\u0000b"],
    ["other controls", "\u0001\u001f\u007f\u0085\u2028.txt"],
    ["quote breakout", 'x"; filename="evil.exe'],
  ])("never lets %s into the header", (_label, name) => {
    const header = contentDisposition(name);
    expect(header).toMatch(VALID_HEADER);
    expect(header).not.toContain("\r");
    expect(header).not.toContain("\n");
    expect(header).not.toContain("\u0000");
    expect(parts(header).extended).toBe(name);
  });

  it("percent-encodes '()* which encodeURIComponent leaves alone", () => {
    const header = contentDisposition("it's (a)*.txt");
    expect(header).toContain("filename*=UTF-8''it%27s%20%28a%29%2A.txt");
    expect(parts(header)).toEqual({ fallback: "it's (a)*.txt", extended: "it's (a)*.txt" });
  });

  it("round-trips every printable ASCII character", () => {
    let name = "";
    for (let c = 0x20; c <= 0x7e; c++) name += String.fromCharCode(c);
    const header = contentDisposition(name);
    expect(header).toMatch(VALID_HEADER);
    expect(parts(header)).toEqual({ fallback: name.replace(/["\\]/g, "_"), extended: name });
  });

  it("empty name gives a bare attachment", () => {
    expect(contentDisposition("")).toBe("attachment");
  });

  it("does not throw on lone surrogates", () => {
    const header = contentDisposition("a\ud800b\udc00.txt");
    expect(header).toMatch(VALID_HEADER);
    expect(parts(header)).toEqual({ fallback: "a_b_.txt", extended: "a\ufffdb\ufffd.txt" });
  });
});
