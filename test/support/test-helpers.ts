import { createHash } from "node:crypto";
import { grpcCode } from "./grpc-clients.js";

export const MiB = 1024 * 1024;

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** A body of the given chunks (strings as UTF-8), in the shape a store or the core takes. */
export async function* bodyOf(...chunks: (Uint8Array | string)[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield typeof chunk === "string" ? Buffer.from(chunk) : chunk;
}

/** A whole body, read into one buffer. */
export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** `data` in pieces of `size` bytes (views, not copies), as a client would stream it. */
export function* chunked(data: Buffer, size = MiB): Generator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

/** The gRPC code and message of a call that must fail; fails the test if it succeeds. */
export async function rejection(promise: Promise<unknown>): Promise<{ code: number | undefined; message: string }> {
  const err = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e as Error,
  );
  return { code: grpcCode(err), message: err.message };
}

/** Retries `check` until it passes or `timeoutMs` runs out, for effects that land asynchronously. */
export async function eventually(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
