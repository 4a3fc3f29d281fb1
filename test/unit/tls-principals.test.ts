import type { PeerCertificate } from "node:tls";
import { describe, expect, it } from "vitest";
import { AuthenticationError, CertificateAuthenticator, type Authenticator } from "../../src/auth/authenticator.js";
import { openAuthenticator } from "../../src/auth/open-authenticator.js";
import { loadConfig } from "../../src/config/load-config.js";
import { principalOfCertificate } from "../../src/transport/tls/peer-principal.js";
import { writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cert = (fields: Partial<PeerCertificate>) => fields as PeerCertificate;

describe("principalOfCertificate", () => {
  it("takes the subject CN, or the first URI or DNS subject alternative name", () => {
    const c = cert({ subject: { CN: "alice" } as PeerCertificate["subject"], subjectaltname: "DNS:a.svc, URI:spiffe://t/alice, DNS:b.svc, URI:spiffe://t/x" });
    expect(principalOfCertificate(c, "subject_cn")).toBe("alice");
    expect(principalOfCertificate(c, "san_uri")).toBe("spiffe://t/alice");
    expect(principalOfCertificate(c, "san_dns")).toBe("a.svc");
  });

  it("reads quoted entries whole and gives no principal when the name is missing or has control characters", () => {
    expect(principalOfCertificate(cert({ subjectaltname: 'URI:"spiffe://t/a,b", DNS:x' }), "san_uri")).toBe("spiffe://t/a,b");
    expect(principalOfCertificate(cert({ subjectaltname: "DNS:x" }), "san_uri")).toBeUndefined();
    expect(principalOfCertificate(cert({ subject: {} as PeerCertificate["subject"] }), "subject_cn")).toBeUndefined();
    expect(principalOfCertificate(cert({ subject: { CN: "a\u0000b" } as PeerCertificate["subject"] }), "subject_cn")).toBeUndefined();
    expect(principalOfCertificate(cert({ subject: { CN: ["first", "second"] } as unknown as PeerCertificate["subject"] }), "subject_cn")).toBe("first");
  });
});

describe("CertificateAuthenticator", () => {
  const bearer: Authenticator = {
    authenticate: async (authorization) => {
      if (authorization === "Bearer good-token-0123456789") return "token-user";
      throw new AuthenticationError("Invalid API key or token");
    },
  };
  const reject = (p: Promise<string>) => p.then(() => undefined, (e: unknown) => e as Error);

  it("token precedence: a token wins and must be valid; a certificate serves alone", async () => {
    const auth = new CertificateAuthenticator(bearer, "token");
    expect(await auth.authenticate("Bearer good-token-0123456789", "alice")).toBe("token-user");
    expect(await reject(auth.authenticate("Bearer bad", "alice"))).toBeInstanceOf(AuthenticationError);
    expect(await auth.authenticate(undefined, "alice")).toBe("alice");
    expect((await reject(auth.authenticate(undefined, undefined)))?.message).toMatch(/client certificate, or send 'Authorization: Bearer/);
  });

  it("certificate precedence: a verified certificate wins and the token is not checked", async () => {
    const auth = new CertificateAuthenticator(bearer, "certificate");
    expect(await auth.authenticate("Bearer bad", "alice")).toBe("alice");
    expect(await auth.authenticate("Bearer good-token-0123456789", undefined)).toBe("token-user");
  });

  it("certificates alone (no server.auth): a token is no way in", async () => {
    const auth = new CertificateAuthenticator(undefined, "token");
    expect(await auth.authenticate("Bearer good-token-0123456789", "alice")).toBe("alice");
    expect((await reject(auth.authenticate("Bearer good-token-0123456789", undefined)))?.message).toMatch(/identifies callers by client certificate/);
  });

  it("openAuthenticator uses certificates only with principal_from", () => {
    const dir = mkdtempSync(join(tmpdir(), "tls-config-"));
    const file = join(dir, "c.yaml");
    writeFileSync(file, "server:\n  tls:\n    cert_file: s.crt\n    key_file: s.key\n    client_ca_file: ca.crt\n    principal_from: san_uri\n");
    const config = loadConfig({ configPath: file, env: {} });
    expect(config.server.tls).toMatchObject({ clientAuth: "require", principalFrom: "san_uri", principalPrecedence: "token", minVersion: "TLSv1.2", reloadIntervalMs: 10_000 });
    expect(openAuthenticator(config.auth, config.server.tls)).toBeInstanceOf(CertificateAuthenticator);
    expect(openAuthenticator(undefined, { ...config.server.tls!, principalFrom: undefined })).toBeUndefined();
  });

  it("the config refuses principal_from without client certificates and client_auth without a CA", () => {
    const dir = mkdtempSync(join(tmpdir(), "tls-config-"));
    const bad = [
      ["    principal_from: subject_cn\n", /principal_from needs client certificates/],
      ["    client_auth: optional\n", /client_auth optional or require needs client_ca_file/],
      ["    min_version: TLSv1.1\n", /min_version must be "TLSv1.2" or "TLSv1.3"/],
    ] as const;
    for (const [extra, message] of bad) {
      const file = join(dir, "c.yaml");
      writeFileSync(file, `server:\n  tls:\n    cert_file: s.crt\n    key_file: s.key\n${extra}`);
      expect(() => loadConfig({ configPath: file, env: {} })).toThrow(message);
    }
  });
});
