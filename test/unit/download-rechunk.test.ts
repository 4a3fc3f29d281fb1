import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cutToSize, rechunk } from "../../src/transport/connect/download-chunks.js";

async function collect(chunks: Uint8Array[], max: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const piece of rechunk((async function* () { yield* chunks; })(), max)) out.push(piece);
  return out;
}

describe("rechunk (download messages)", () => {
  it("keeps every byte in order, and no piece is empty or over the limit", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 12 }), fc.integer({ min: 1, max: 512 }), async (chunks, max) => {
        const out = await collect(chunks, max);
        expect(Buffer.concat(out).equals(Buffer.concat(chunks))).toBe(true);
        for (const piece of out) {
          expect(piece.byteLength).toBeGreaterThan(0);
          expect(piece.byteLength).toBeLessThanOrEqual(max);
        }
      }),
    );
  });

  it("passes reads of exactly the limit through uncopied, and cuts larger ones into views", async () => {
    const exact = Buffer.alloc(256, 1);
    const large = Buffer.alloc(600, 2);
    const out = await collect([exact, large], 256);
    expect(out[0]).toBe(exact);
    expect(out.slice(1).map((p) => p.buffer)).toEqual([large.buffer, large.buffer, large.buffer]);
    expect(out.map((p) => p.byteLength)).toEqual([256, 256, 256, 88]);
  });

  it("joins small reads into pieces close to the limit", async () => {
    const out = await collect(Array.from({ length: 10 }, () => Buffer.alloc(64, 3)), 256);
    expect(out.map((p) => p.byteLength)).toEqual([256, 256, 128]);
  });

  it("cutToSize only cuts reads over the limit, into views, and yields nothing for an empty read", () => {
    const small = Buffer.alloc(10, 1);
    const large = Buffer.alloc(600, 2);
    expect([...cutToSize(small, 256)]).toEqual([small]);
    expect([...cutToSize(small, 256)][0]).toBe(small);
    expect([...cutToSize(Buffer.alloc(0), 256)]).toEqual([]);
    const pieces = [...cutToSize(large, 256)];
    expect(pieces.map((p) => p.byteLength)).toEqual([256, 256, 88]);
    expect(pieces.every((p) => p.buffer === large.buffer)).toBe(true);
  });
});
