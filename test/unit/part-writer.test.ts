import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PartBuffers } from "../../src/storage/part-buffers.js";
import { writeInParts, type PartSink, type SentPart } from "../../src/storage/part-writer.js";

// The S3 behaviour of writeInParts is tested against moto through S3ObjectStore (test/integration,
// test/contract). These tests drive it with a recording sink, for what moto cannot show: the
// order of calls, how many parts are in flight, buffer reuse, and failures at chosen moments.

const PART = 1024;

interface Recorded {
  calls: string[];
  whole?: Buffer;
  parts: Map<number, Buffer>;
  completed?: number[];
  aborted: boolean;
  maxInFlight: number;
  sentBuffers: Set<ArrayBufferLike>;
}

function recordingSink(options: { failPart?: number; failBegin?: boolean; partDelayMs?: number } = {}): { sink: PartSink; rec: Recorded } {
  const rec: Recorded = { calls: [], parts: new Map(), aborted: false, maxInFlight: 0, sentBuffers: new Set() };
  let inFlight = 0;
  const sink: PartSink = {
    async putWhole(body) {
      rec.calls.push("put");
      rec.whole = Buffer.from(body);
    },
    async begin() {
      rec.calls.push("begin");
      if (options.failBegin) throw new Error("begin failed");
      return "upload-1";
    },
    async sendPart(uploadId, partNumber, body): Promise<SentPart> {
      expect(uploadId).toBe("upload-1");
      rec.calls.push(`part ${partNumber}`);
      rec.sentBuffers.add(body.buffer);
      inFlight++;
      rec.maxInFlight = Math.max(rec.maxInFlight, inFlight);
      try {
        // Copy only once the "request" has finished: the writer must not refill a buffer before.
        await new Promise((r) => setTimeout(r, options.partDelayMs ?? 1));
        if (partNumber === options.failPart) throw new Error(`part ${partNumber} failed`);
        rec.parts.set(partNumber, Buffer.from(body));
        return { ETag: `"etag-${partNumber}"` };
      } finally {
        inFlight--;
      }
    },
    async complete(uploadId, parts) {
      rec.calls.push("complete");
      rec.completed = parts.map((p) => p.PartNumber);
      parts.forEach((p) => expect(p.ETag).toBe(`"etag-${p.PartNumber}"`));
    },
    async abort() {
      rec.calls.push("abort");
      rec.aborted = true;
    },
  };
  return { sink, rec };
}

/** `data` in chunks of `chunk` bytes (fresh buffers, as a socket hands them over). */
async function* chunked(data: Buffer, chunk: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += chunk) {
    yield Buffer.from(data.subarray(i, i + chunk));
    if (i % (chunk * 8) === 0) await new Promise((r) => setImmediate(r));
  }
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function assembled(rec: Recorded): Buffer {
  return Buffer.concat(rec.completed!.map((n) => rec.parts.get(n)!));
}

describe("writeInParts", () => {
  it.each([0, 1, PART - 1, PART])("sends %i bytes as one PutObject", async (size) => {
    const data = randomBytes(size);
    const { sink, rec } = recordingSink();
    const out = await writeInParts(chunked(data, 100), { partSize: PART, concurrency: 2 }, sink);
    expect(out).toEqual({ bytes: size, multipart: false });
    expect(rec.calls).toEqual(["put"]);
    expect(sha(rec.whole!)).toBe(sha(data));
  });

  it.each([1.5, 2])("sends %i MiB of a 2 MiB part as one PutObject from a part buffer, which is then reused", async (mib) => {
    const partSize = 2 * 1024 * 1024;
    const data = randomBytes(mib * 1024 * 1024);
    const buffers = new PartBuffers(partSize, 2);
    const given: Buffer[] = [];
    const give = buffers.give.bind(buffers);
    buffers.give = (b) => void (given.push(b), give(b));
    let sentFrom: ArrayBufferLike | undefined;
    const { sink, rec } = recordingSink();
    const putWhole = sink.putWhole;
    sink.putWhole = async (body) => {
      sentFrom = body.buffer;
      await putWhole(body);
    };
    const out = await writeInParts(chunked(data, 64 * 1024), { partSize, concurrency: 2, buffers }, sink);
    expect(out).toEqual({ bytes: data.length, multipart: false });
    expect(rec.calls).toEqual(["put"]);
    expect(sha(rec.whole!)).toBe(sha(data));
    expect(given.map((b) => b.buffer)).toEqual([sentFrom]);
  });

  it.each([
    [PART + 1, 2],
    [2 * PART, 2],
    [2 * PART + 1, 3],
    [10 * PART + 17, 11],
  ])("sends %i bytes in %i parts, every one but the last full, in order", async (size, parts) => {
    const data = randomBytes(size);
    const { sink, rec } = recordingSink();
    const out = await writeInParts(chunked(data, 333), { partSize: PART, concurrency: 3 }, sink);
    expect(out).toEqual({ bytes: size, multipart: true });
    expect(rec.calls[0]).toBe("begin");
    expect(rec.calls.at(-1)).toBe("complete");
    expect(rec.completed).toEqual(Array.from({ length: parts }, (_, i) => i + 1));
    for (let n = 1; n < parts; n++) expect(rec.parts.get(n)!.length).toBe(PART);
    expect(rec.parts.get(parts)!.length).toBeGreaterThan(0);
    expect(sha(assembled(rec))).toBe(sha(data));
    expect(rec.aborted).toBe(false);
  });

  it("handles chunks larger than a part", async () => {
    const data = randomBytes(7 * PART + 5);
    const { sink, rec } = recordingSink();
    await writeInParts(chunked(data, 3 * PART + 7), { partSize: PART, concurrency: 2 }, sink);
    expect(sha(assembled(rec))).toBe(sha(data));
  });

  it("keeps at most `concurrency` parts in flight and reuses their buffers", async () => {
    const data = randomBytes(40 * PART);
    const { sink, rec } = recordingSink({ partDelayMs: 5 });
    const buffers = new PartBuffers(PART, 4);
    await writeInParts(chunked(data, 256), { partSize: PART, concurrency: 3, buffers }, sink);
    expect(rec.maxInFlight).toBe(3);
    // 40 parts went out of at most concurrency + 1 distinct buffers.
    expect(rec.sentBuffers.size).toBeLessThanOrEqual(4);
    expect(sha(assembled(rec))).toBe(sha(data));
  });

  it("keeps spare buffers for the next put a little while, then lets them go", async () => {
    const buffers = new PartBuffers(PART, 4, 50);
    const { sink } = recordingSink();
    await writeInParts(chunked(randomBytes(5 * PART), 100), { partSize: PART, concurrency: 2, buffers }, sink);
    expect(buffers.spares).toBeGreaterThan(0); // kept after the put ended
    buffers.enter();
    const first = buffers.take();
    buffers.give(first);
    expect(buffers.take()).toBe(first); // a put soon after reuses them
    buffers.give(first);
    buffers.leave();
    await new Promise((r) => setTimeout(r, 120));
    expect(buffers.spares).toBe(0); // an idle store holds none
    buffers.enter();
    expect(buffers.take()).not.toBe(first);
    buffers.leave();
  });

  it("stops reading, waits for the parts in flight and aborts when a part fails", async () => {
    const data = randomBytes(30 * PART);
    let read = 0;
    async function* counting() {
      for await (const c of chunked(data, 256)) {
        read += c.byteLength;
        yield c;
      }
    }
    const { sink, rec } = recordingSink({ failPart: 3, partDelayMs: 3 });
    await expect(writeInParts(counting(), { partSize: PART, concurrency: 2 }, sink)).rejects.toThrow("part 3 failed");
    expect(rec.calls.at(-1)).toBe("abort");
    expect(rec.calls).not.toContain("complete");
    expect(read).toBeLessThan(data.length);
  });

  it("aborts the multipart upload when the body fails after some parts", async () => {
    async function* failing() {
      yield randomBytes(3 * PART);
      throw new Error("client went away");
    }
    const { sink, rec } = recordingSink();
    await expect(writeInParts(failing(), { partSize: PART, concurrency: 2 }, sink)).rejects.toThrow("client went away");
    expect(rec.calls).toContain("begin");
    expect(rec.calls.at(-1)).toBe("abort");
    expect(rec.calls).not.toContain("complete");
  });

  it("sends nothing when the body fails within the first part", async () => {
    async function* failing() {
      yield randomBytes(PART / 2);
      throw new Error("truncated");
    }
    const { sink, rec } = recordingSink();
    await expect(writeInParts(failing(), { partSize: PART, concurrency: 2 }, sink)).rejects.toThrow("truncated");
    expect(rec.calls).toEqual([]);
  });

  it("fails without a multipart upload to abort when begin fails", async () => {
    const { sink, rec } = recordingSink({ failBegin: true });
    await expect(writeInParts(chunked(randomBytes(3 * PART), 512), { partSize: PART, concurrency: 2 }, sink)).rejects.toThrow("begin failed");
    expect(rec.calls).toEqual(["begin"]);
  });
});

describe("writeInParts when a part is never answered", () => {
  /** A sink whose part `stuck` never settles unless its signal is aborted (a store that never answers). */
  function stuckSink(stuck: number, abortFails = false) {
    const calls: string[] = [];
    const sink: PartSink = {
      async putWhole() {
        calls.push("put");
      },
      async begin() {
        return "upload-1";
      },
      sendPart(_id, partNumber, _body, signal) {
        calls.push(`part ${partNumber}`);
        if (partNumber !== stuck) return Promise.resolve({ ETag: `"etag-${partNumber}"` });
        return new Promise<SentPart>((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            calls.push(`part ${partNumber} cancelled`);
            reject(new Error("request cancelled"));
          });
        });
      },
      async complete() {
        calls.push("complete");
      },
      async abort() {
        calls.push("abort");
        if (abortFails) throw new Error("abort refused");
      },
    };
    return { sink, calls };
  }

  it("aborts the upload within the grace period once the caller's signal fires, cancelling the part", async () => {
    const { sink, calls } = stuckSink(1);
    const controller = new AbortController();
    const reason = new Error("client cancelled");
    const body = (async function* () {
      yield randomBytes(PART * 2 + 10); // two full parts and a bit: the body ends, part 1 hangs
    })();
    setTimeout(() => controller.abort(reason), 50);
    const started = Date.now();
    await expect(writeInParts(body, { partSize: PART, concurrency: 4, signal: controller.signal }, sink)).rejects.toBe(reason);
    const took = Date.now() - started;
    expect(took).toBeLessThan(3_500); // the 2 s grace, then the cancel
    expect(took).toBeGreaterThanOrEqual(1_900); // the answered parts got their grace first
    expect(calls).not.toContain("complete");
    expect(calls.slice(-2)).toEqual(["part 1 cancelled", "abort"]);
  });

  it("reports an abort that fails, and still rejects with the caller's reason", async () => {
    const { sink } = stuckSink(2, true);
    const controller = new AbortController();
    const reason = new Error("client cancelled");
    const failures: unknown[] = [];
    const body = (async function* () {
      yield randomBytes(PART * 3 + 1);
    })();
    setTimeout(() => controller.abort(reason), 20);
    await expect(
      writeInParts(body, { partSize: PART, concurrency: 4, signal: controller.signal, onAbortFailed: (id, err) => failures.push([id, (err as Error).message]) }, sink),
    ).rejects.toBe(reason);
    expect(failures).toEqual([["upload-1", "abort refused"]]);
  });
});
