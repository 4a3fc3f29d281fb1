import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationError } from "../../src/auth/authenticator.js";
import { openAuthenticator } from "../../src/auth/open-authenticator.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";

const ALICE_KEY = "sk-test-alice-0123456789abcdef";
const BOB_KEY = "sk-test-bob-0123456789abcdef00";

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("API keys", () => {
  const auth = openAuthenticator({
    apiKeys: [
      { key: ALICE_KEY, principal: "alice" },
      { key: BOB_KEY, principal: "bob" },
    ],
  })!;

  it("map each key to its principal", async () => {
    expect(await auth.authenticate(`Bearer ${ALICE_KEY}`)).toBe("alice");
    expect(await auth.authenticate(`bearer   ${BOB_KEY}`)).toBe("bob");
  });

  it("refuse a wrong, truncated, extended or missing key with a message naming the problem", async () => {
    for (const header of [`Bearer ${ALICE_KEY.slice(0, -1)}`, `Bearer ${ALICE_KEY}x`, "Bearer sk-nope"]) {
      const err = await rejection(auth.authenticate(header));
      expect(err).toBeInstanceOf(AuthenticationError);
      expect(err.message).toBe("Invalid API key or token");
    }
    expect((await rejection(auth.authenticate(undefined))).message).toMatch(/Missing credentials/);
    expect((await rejection(auth.authenticate(""))).message).toMatch(/Missing credentials/);
    expect((await rejection(auth.authenticate(`Basic ${ALICE_KEY}`))).message).toMatch(/must be 'Bearer/);
    expect((await rejection(auth.authenticate(`Bearer ${ALICE_KEY} extra`))).message).toMatch(/must be 'Bearer/);
  });
});

describe("JWTs", () => {
  let privateKey: CryptoKey;
  let otherKey: CryptoKey;
  let publicPem: string;
  let jwksServer: Server;
  let jwksUrl: string;
  const issuer = "https://issuer.test";
  const audience = "files-service";

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256", { extractable: true });
    privateKey = pair.privateKey;
    publicPem = await exportSPKI(pair.publicKey);
    otherKey = (await generateKeyPair("ES256")).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    jwksServer = createServer((_req, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, "127.0.0.1", resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  const token = (claims: Record<string, unknown>, opts: { key?: CryptoKey; exp?: string | number; iss?: string; aud?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(opts.iss ?? issuer)
      .setAudience(opts.aud ?? audience)
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? "5m")
      .sign(opts.key ?? privateKey);

  for (const source of ["public_key", "jwks_url"] as const) {
    describe(`verified with ${source}`, () => {
      const auth = () =>
        openAuthenticator({
          apiKeys: [{ key: ALICE_KEY, principal: "alice" }],
          jwt: {
            ...(source === "public_key" ? { publicKey: publicPem } : { jwksUrl }),
            issuer,
            audience,
            principalClaim: "sub",
            clockToleranceSeconds: 0,
          },
        })!;

      it("take the principal from the claim; API keys still work beside them", async () => {
        expect(await auth().authenticate(`Bearer ${await token({ sub: "carol" })}`)).toBe("carol");
        expect(await auth().authenticate(`Bearer ${ALICE_KEY}`)).toBe("alice");
      });

      it("refuse wrong issuer, wrong audience, expiry, a foreign signature and a missing claim", async () => {
        const cases: Array<[Promise<string>, RegExp]> = [
          [token({ sub: "x" }, { iss: "https://evil.test" }), /'iss' claim/],
          [token({ sub: "x" }, { aud: "other" }), /'aud' claim/],
          [token({ sub: "x" }, { exp: Math.floor(Date.now() / 1000) - 60 }), /expired/],
          [token({ sub: "x" }, { key: otherKey }), /Invalid token/],
          [token({ name: "no subject" }), /'sub' claim/],
        ];
        for (const [jwt, message] of cases) {
          const err = await rejection(auth().authenticate(`Bearer ${await jwt}`));
          expect(err).toBeInstanceOf(AuthenticationError);
          expect(err.message).toMatch(message);
        }
      });

      it("refuse an unsigned token (alg none)", async () => {
        const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
        const unsigned = `${b64({ alg: "none" })}.${b64({ sub: "mallory", iss: issuer, aud: audience, exp: 9e9 })}.AAAA`;
        expect((await rejection(auth().authenticate(`Bearer ${unsigned}`))).message).toBe("Invalid token");
      });
    });
  }
});

describe("auth configuration", () => {
  const write = (text: string) => {
    const path = join(mkdtempSync(join(tmpdir(), "files-auth-")), "config.yaml");
    writeFileSync(path, text);
    return path;
  };

  it("reads api keys from the environment", () => {
    const path = write(`server:\n  auth:\n    api_keys:\n      - key: \${env.ALICE_KEY}\n        principal: alice\n`);
    const config = loadConfig({ configPath: path, env: { ALICE_KEY } });
    expect(config.auth).toEqual({ apiKeys: [{ key: ALICE_KEY, principal: "alice" }], jwt: undefined });
    expect(loadConfig({ configPath: write("server: {}\n"), env: {} }).auth).toBeUndefined();
  });

  it("names each mistake", () => {
    const cases: Array<[string, RegExp]> = [
      [`server:\n  auth:\n    api_keys:\n      - key: \${env.UNSET:=}\n        principal: a\n`, /server\.auth\.api_keys\.0\.key: key must be at least 16/],
      [`server:\n  auth:\n    api_keys:\n      - key: short\n        principal: a\n`, /at least 16 characters/],
      [`server:\n  auth: {}\n`, /auth needs api_keys or jwt/],
      [`server:\n  auth:\n    api_keys:\n      - {key: ${ALICE_KEY}, principal: a}\n      - {key: ${ALICE_KEY}, principal: b}\n`, /same key appears twice/],
      [`server:\n  auth:\n    jwt: {issuer: i, audience: a}\n`, /exactly one of jwks_url or public_key/],
      [`server:\n  auth:\n    jwt: {jwks_url: "https://x.test/jwks", audience: a}\n`, /issuer/],
      [`server:\n  auth:\n    api_keys:\n      - {key: ${ALICE_KEY}, principal: a, role: admin}\n`, /role/],
    ];
    for (const [yaml, message] of cases) {
      let err: unknown;
      try {
        loadConfig({ configPath: write(yaml), env: {} });
      } catch (e) {
        err = e;
      }
      expect(err, yaml).toBeInstanceOf(ConfigError);
      expect((err as Error).message, yaml).toMatch(message);
    }
  });
});
