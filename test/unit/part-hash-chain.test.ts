import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PartHashChains, type PartTap } from "../../src/files/part-hash-chain.js";

const sha = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

/** A part streaming by hand: `push` hands the tap one chunk, `finish` ends it as stored or failed. */
function streaming(tap: PartTap) {
  const queue: (Uint8Array | null)[] = [];
  let wake: (() => void) | undefined;
  const source: AsyncIterable<Uint8Array> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const next = queue.shift()!;
        if (next === null) return;
        yield next;
      }
    },
  };
  const consumed = (async () => {
    for await (const chunk of tap.wrap(source)) void chunk;
  })();
  const settle = () => new Promise((r) => setImmediate(r));
  return {
    async push(chunk: Uint8Array) {
      queue.push(chunk);
      wake?.();
      await settle();
    },
    async finish(ok: boolean) {
      queue.push(null);
      wake?.();
      await consumed;
      tap.end(ok);
    },
  };
}

/** What completing in `order` computes: the prefix's hash continued over the parts after it. */
function digestOf(chains: PartHashChains, uploadId: string, order: string[], bytes: Map<string, Uint8Array>) {
  const prefix = chains.take(uploadId, order);
  for (const id of order.slice(prefix.parts)) prefix.hash.update(bytes.get(id)!);
  return { sha256: prefix.hash.digest("hex"), parts: prefix.parts, bytes: prefix.bytes };
}

describe("PartHashChains", () => {
  it("hashes parts that stream one after another, so completing in that order reads nothing back", async () => {
    const chains = new PartHashChains(1 << 20);
    const parts = [randomBytes(1000), randomBytes(1), randomBytes(5000)];
    const bytes = new Map(parts.map((p, i) => [`p${i}`, p]));
    for (const [id, data] of bytes) {
      const part = streaming(chains.begin("u", id));
      await part.push(data.subarray(0, 10));
      await part.push(data.subarray(10));
      await part.finish(true);
    }
    const got = digestOf(chains, "u", ["p0", "p1", "p2"], bytes);
    expect(got).toEqual({ sha256: sha(...parts), parts: 3, bytes: 6001 });
    expect(chains.bufferedBytes).toBe(0);
  });

  it("holds the chunks of parts that began later until the earlier ones end, in any order of ending", async () => {
    const chains = new PartHashChains(1 << 20);
    const data = [randomBytes(300), randomBytes(400), randomBytes(500)];
    const bytes = new Map(data.map((d, i) => [`p${i}`, d]));
    const parts = data.map((_, i) => streaming(chains.begin("u", `p${i}`)));
    for (let at = 0; at < 500; at += 100) {
      for (const [i, d] of data.entries()) if (at < d.length) await parts[i]!.push(d.subarray(at, at + 100));
    }
    expect(chains.bufferedBytes).toBe(400 + 500);
    await parts[2]!.finish(true);
    await parts[1]!.finish(true);
    expect(chains.bufferedBytes).toBe(900);
    await parts[0]!.finish(true);
    expect(chains.bufferedBytes).toBe(0);
    expect(digestOf(chains, "u", ["p0", "p1", "p2"], bytes)).toMatchObject({ sha256: sha(...data), parts: 3 });
  });

  it("takes a failed part's bytes back out of the hash, and the retried part ends the prefix when it began later", async () => {
    const chains = new PartHashChains(1 << 20);
    const [a, b, c] = [randomBytes(100), randomBytes(100), randomBytes(100)];
    const bytes = new Map([["a", a], ["b2", b], ["c", c]]);
    const pa = streaming(chains.begin("u", "a"));
    await pa.push(a);
    await pa.finish(true);
    const pb = streaming(chains.begin("u", "b"));
    const pc = streaming(chains.begin("u", "c"));
    await pb.push(b.subarray(0, 50)); // then the connection breaks
    await pc.push(c);
    await pb.finish(false);
    await pc.finish(true);
    const retried = streaming(chains.begin("u", "b2"));
    await retried.push(b);
    await retried.finish(true);
    // Hashed in order: a, c, b2. Completing as a, b2, c keeps only a; as a, c, b2, all three.
    expect(digestOf(chains, "u", ["a", "b2", "c"], bytes)).toMatchObject({ sha256: sha(a, b, c), parts: 1, bytes: 100 });
  });

  it("hashes on without a failed head part's bytes, so the parts after it still count", async () => {
    const chains = new PartHashChains(1 << 20);
    const [a, b, c] = [randomBytes(100), randomBytes(100), randomBytes(100)];
    const bytes = new Map([["a", a], ["c", c], ["b2", b]]);
    const pa = streaming(chains.begin("u", "a"));
    const pc = streaming(chains.begin("u", "c"));
    await pa.push(a.subarray(0, 60)); // a is the head, hashed as it arrives, then it fails
    await pc.push(c);
    await pa.finish(false);
    await pc.finish(true);
    const pa2 = streaming(chains.begin("u", "a2"));
    await pa2.push(a);
    await pa2.finish(true);
    bytes.set("a2", a);
    expect(digestOf(chains, "u", ["c", "a2"], bytes)).toMatchObject({ sha256: sha(c, a), parts: 2, bytes: 200 });
  });

  it("ends the prefix at a part that would pass the memory budget, and gives the memory back", async () => {
    const chains = new PartHashChains(150);
    const data = [randomBytes(100), randomBytes(100), randomBytes(100), randomBytes(100)];
    const bytes = new Map(data.map((d, i) => [`p${i}`, d]));
    const parts = data.map((_, i) => streaming(chains.begin("u", `p${i}`)));
    for (const [i, d] of data.entries()) await parts[i]!.push(d);
    expect(chains.bufferedBytes).toBe(100); // p1 held; p2 and p3 over the budget
    for (const p of parts) await p.finish(true);
    expect(chains.bufferedBytes).toBe(0);
    expect(digestOf(chains, "u", ["p0", "p1", "p2", "p3"], bytes)).toMatchObject({ sha256: sha(...data), parts: 2 });
  });

  it("keeps nothing of an upload it forgot, and knows nothing of parts another process took", async () => {
    const chains = new PartHashChains(1 << 20);
    const [a, b] = [randomBytes(64), randomBytes(64)];
    const pa = streaming(chains.begin("u", "a"));
    const pb = streaming(chains.begin("u", "b"));
    await pa.push(a);
    await pb.push(b);
    chains.forget("u");
    expect(chains.bufferedBytes).toBe(0);
    await pa.finish(true);
    await pb.finish(true);
    expect(chains.take("u", ["a", "b"])).toMatchObject({ parts: 0, bytes: 0 });

    const pc = streaming(chains.begin("v", "c"));
    await pc.push(a);
    await pc.finish(true);
    const bytes = new Map([["elsewhere", b], ["c", a]]);
    expect(digestOf(chains, "v", ["elsewhere", "c"], bytes)).toMatchObject({ sha256: sha(b, a), parts: 0 });
  });

  it("agrees with hashing the parts in the completed order, over random interleavings, failures, budgets and orders", async () => {
    let seed = 20261203;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let prefixed = 0;
    for (let round = 0; round < 300; round++) {
      const chains = new PartHashChains([64, 512, 1 << 20][rand(3)]!);
      const bytes = new Map<string, Uint8Array>();
      const live: { id: string; data: Uint8Array; at: number; part: ReturnType<typeof streaming> }[] = [];
      const stored = new Set<string>();
      const began: string[] = [];
      let next = 0;
      while (next < 8 || live.length > 0) {
        const action = rand(4);
        if ((action === 0 || live.length === 0) && next < 8) {
          const id = `r${round}p${next++}`;
          const data = randomBytes(1 + rand(200));
          bytes.set(id, data);
          began.push(id);
          live.push({ id, data, at: 0, part: streaming(chains.begin("u", id)) });
          continue;
        }
        const i = rand(live.length);
        const p = live[i]!;
        if (p.at < p.data.length && action !== 3) {
          const n = 1 + rand(p.data.length - p.at);
          await p.part.push(p.data.subarray(p.at, p.at + n));
          p.at += n;
          continue;
        }
        const ok = p.at === p.data.length && rand(5) !== 0;
        await p.part.finish(ok);
        if (ok) stored.add(p.id);
        live.splice(i, 1);
      }
      expect(chains.bufferedBytes, `round ${round}`).toBe(0);
      // Mostly the order they began in, as clients send parts; sometimes another.
      const order = began.filter((id) => stored.has(id));
      if (rand(3) === 0) order.sort(() => rand(3) - 1);
      const want = sha(...order.map((id) => bytes.get(id)!));
      const got = digestOf(chains, "u", order, bytes);
      expect(got.sha256, `round ${round}, order ${order.join(",")}`).toBe(want);
      prefixed += got.parts;
    }
    expect(prefixed, "parts taken from the prefix over all rounds").toBeGreaterThan(300);
  });
});
