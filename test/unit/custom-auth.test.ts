import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationError, BearerAuthenticator } from "../../src/auth/authenticator.js";
import { CustomAuthVerifier } from "../../src/auth/custom.js";
import { FilesError } from "../../src/files/errors.js";

/** A real endpoint: the token decides the answer. */
let server: Server;
let endpoint: string;
const seen: Array<{ api_key: string; request: { path: string; method: string; params: Record<string, string[]> } }> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      const parsed = JSON.parse(body) as (typeof seen)[number];
      seen.push(parsed);
      const token = parsed.api_key;
      const json = (status: number, value: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
      if (token.startsWith("good-")) return json(200, { principal: token.slice(5), attributes: { teams: ["ml"] } });
      if (token === "bare") return json(200, { principal: "bare" });
      if (token === "slow") return void setTimeout(() => json(200, { principal: "slow" }), 1500);
      if (token === "not-json") return void res.writeHead(200).end("<html>hello</html>");
      if (token === "no-principal") return json(200, { attributes: { teams: ["ml"] } });
      if (token === "bad-attributes") return json(200, { principal: "x", attributes: { teams: "ml" } });
      if (token === "server-error") return json(500, { error: "boom" });
      return json(401, { message: "no" });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const verifier = (options: Partial<ConstructorParameters<typeof CustomAuthVerifier>[0]> = {}) =>
  new CustomAuthVerifier({ endpoint, timeoutMs: 500, cacheTtlMs: 60_000, cacheMaxEntries: 100, ...options });

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("resolved");
}

describe("the custom authenticator", () => {
  it("POSTs the token with the request's method and path, and takes {principal, attributes} back", async () => {
    const auth = new BearerAuthenticator([verifier()]);
    expect(await auth.identify("Bearer good-ann", undefined, { method: "GET", path: "/v1/files", params: { limit: ["2"] } })).toEqual({
      principal: "ann",
      attributes: { teams: ["ml"] },
    });
    expect(seen.at(-1)).toEqual({ api_key: "good-ann", request: { path: "/v1/files", method: "GET", headers: {}, params: { limit: ["2"] } } });
    expect(await verifier().identify("bare")).toEqual({ principal: "bare", attributes: null });
  });

  it("a refusal (any status but 200) and a garbage answer are authentication errors (401), never a server error", async () => {
    for (const token of ["nope", "server-error", "not-json", "no-principal", "bad-attributes"]) {
      const err = await failure(verifier().identify(token));
      expect(err, token).toBeInstanceOf(AuthenticationError);
    }
    expect(((await failure(verifier().identify("nope"))) as Error).message).toBe("The authentication endpoint refused the token (401)");
  });

  it("an endpoint that does not answer in time, or cannot be reached, is unavailable (503), not a refusal", async () => {
    const started = Date.now();
    const err = await failure(verifier({ timeoutMs: 200 }).identify("slow"));
    expect(Date.now() - started).toBeLessThan(1400);
    expect(err).toBeInstanceOf(FilesError);
    expect((err as FilesError).code).toBe("unavailable");
    const unreachable = await failure(new CustomAuthVerifier({ endpoint: "http://127.0.0.1:1/auth", timeoutMs: 500, cacheTtlMs: 0, cacheMaxEntries: 0 }).identify("good-x"));
    expect((unreachable as FilesError).code).toBe("unavailable");
  });

  it("caches accepted tokens by hash until they expire, within its bound; refusals are not cached", async () => {
    let now = 1_000_000;
    const v = verifier({ cacheTtlMs: 1000, cacheMaxEntries: 2, now: () => now });
    const asked = () => seen.length;
    const before = asked();
    await v.identify("good-a");
    await v.identify("good-a");
    expect(asked() - before).toBe(1);
    now += 1001; // expired: asked again
    await v.identify("good-a");
    expect(asked() - before).toBe(2);
    await v.identify("good-b");
    await v.identify("good-c"); // evicts the oldest (a)
    expect(v.cacheSize).toBe(2);
    await v.identify("good-a");
    expect(asked() - before).toBe(5);
    await failure(v.identify("nope"));
    await failure(v.identify("nope"));
    expect(asked() - before).toBe(7);
    // Keys are digests: the token itself is never held.
    expect(JSON.stringify([...(v as unknown as { cache: Map<string, unknown> }).cache.keys()])).not.toContain("good-");
  });
});
