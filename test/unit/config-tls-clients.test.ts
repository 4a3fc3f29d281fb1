/**
 * TLS of the service's own connections, as configured: to the S3 endpoint (ca_bundle, verify_ssl)
 * and to PostgreSQL (ssl_mode, ssl_root_cert); and the CA files both read at start.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCaFile } from "../../src/config/ca-file.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { describeTlsFailure } from "../../src/storage/s3-errors.js";
import { makeCa } from "../support/test-certs.js";

function writeYaml(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "files-config-")), "config.yaml");
  writeFileSync(path, text);
  return path;
}

describe("S3 TLS options", () => {
  const s3 = (lines: string) => writeYaml(`provider_type: remote::s3\nconfig:\n  bucket_name: b-1\n  endpoint_url: https://s3.internal:9000\n${lines}`);
  const load = (lines: string, env: Record<string, string> = {}) => loadConfig({ configPath: s3(lines), env });

  it("defaults: Node's CA list, verification on", () => {
    expect(load("").storage).toMatchObject({ caBundle: undefined, verifySsl: true });
  });

  it("takes a CA bundle path, and verify_ssl as a boolean or from the environment", () => {
    expect(load("  ca_bundle: /etc/ssl/private-ca.pem\n").storage).toMatchObject({ caBundle: "/etc/ssl/private-ca.pem", verifySsl: true });
    expect(load("  verify_ssl: false\n").storage).toMatchObject({ caBundle: undefined, verifySsl: false });
    expect(load("  verify_ssl: true\n").storage).toMatchObject({ verifySsl: true });
    expect(load('  verify_ssl: "${env.S3_VERIFY:=true}"\n', { S3_VERIFY: "false" }).storage).toMatchObject({ verifySsl: false });
    expect(load('  verify_ssl: "${env.S3_VERIFY:=true}"\n').storage).toMatchObject({ verifySsl: true });
    // An empty value (an unset variable with an empty default) means "not set".
    expect(load('  ca_bundle: "${env.S3_CA:=}"\n').storage).toMatchObject({ caBundle: undefined, verifySsl: true });
  });

  it.each([
    ["ca_bundle with verify_ssl: false", "  ca_bundle: /ca.pem\n  verify_ssl: false\n", /config\.ca_bundle and config\.verify_ssl: false contradict each other/],
    ["a verify_ssl that is not a boolean", "  verify_ssl: sometimes\n", /config\.verify_ssl/],
    ["a ca_bundle that is not a path", "  ca_bundle: [a, b]\n", /config\.ca_bundle/],
  ])("names the field for %s", (_what, lines, message) => {
    const run = () => load(lines);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
  });
});

describe("PostgreSQL TLS options", () => {
  const pg = (lines: string) =>
    writeYaml(`config:\n  bucket_name: b-1\n  metadata_store:\n    type: postgres\n    url: postgres://files@db.internal/files\n${lines}`);
  const load = (lines: string) => loadConfig({ configPath: pg(lines), env: {} }).metadataStore;

  it("unset: no TLS settings of its own (the url's sslmode stands)", () => {
    expect(load("")).toMatchObject({ type: "postgres", sslMode: undefined, sslRootCert: undefined });
  });

  it("takes each ssl_mode, and ssl_root_cert (alone, it means verify-full)", () => {
    for (const mode of ["disable", "require", "verify-full"]) expect(load(`    ssl_mode: ${mode}\n`)).toMatchObject({ sslMode: mode, sslRootCert: undefined });
    expect(load("    ssl_mode: verify-full\n    ssl_root_cert: /etc/ssl/pg-ca.pem\n")).toMatchObject({ sslMode: "verify-full", sslRootCert: "/etc/ssl/pg-ca.pem" });
    expect(load("    ssl_root_cert: /etc/ssl/pg-ca.pem\n")).toMatchObject({ sslMode: "verify-full", sslRootCert: "/etc/ssl/pg-ca.pem" });
    expect(load('    ssl_mode: ""\n    ssl_root_cert: ""\n')).toMatchObject({ sslMode: undefined, sslRootCert: undefined });
  });

  it("host/port/db fields take them too", () => {
    const path = writeYaml("config:\n  bucket_name: b-1\n  metadata_store:\n    type: postgres\n    host: db\n    db: files\n    ssl_mode: require\n");
    expect(loadConfig({ configPath: path, env: {} }).metadataStore).toMatchObject({ host: "db", db: "files", sslMode: "require" });
  });

  it.each([
    ["an unknown ssl_mode", "    ssl_mode: prefer\n", /config\.metadata_store\.ssl_mode: ssl_mode must be "disable", "require" or "verify-full"/],
    ["ssl_root_cert with require", "    ssl_mode: require\n    ssl_root_cert: /ca.pem\n", /ssl_root_cert is only used with ssl_mode: verify-full \(ssl_mode is require\)/],
    ["ssl_root_cert with disable", "    ssl_mode: disable\n    ssl_root_cert: /ca.pem\n", /ssl_root_cert is only used with ssl_mode: verify-full \(ssl_mode is disable\)/],
  ])("names the field for %s", (_what, lines, message) => {
    const run = () => load(lines);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
  });

  it("a sqlite store refuses TLS fields", () => {
    const path = writeYaml("config:\n  bucket_name: b-1\n  metadata_store:\n    type: sqlite\n    db_path: /tmp/x.db\n    ssl_mode: require\n");
    expect(() => loadConfig({ configPath: path, env: {} })).toThrow(/ssl_mode/);
  });
});

describe("readCaFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "files-ca-file-"));

  it("returns every certificate of a bundle as PEM", () => {
    const [a, b] = [makeCa("CA One"), makeCa("CA Two")];
    const bundle = join(dir, "bundle.pem");
    writeFileSync(bundle, `# two CAs\n${a.certPem}\nsome text between\n${b.certPem}`);
    const pem = readCaFile(bundle, "config.ca_bundle");
    expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(pem).toContain(a.certPem.trim());
    expect(pem).toContain(b.certPem.trim());
    expect(pem).not.toContain("some text");
  });

  it("names the field and file when it is missing, a directory, without a certificate, or broken", () => {
    expect(() => readCaFile(join(dir, "nope.pem"), "config.ca_bundle")).toThrow(`config.ca_bundle: cannot read ${join(dir, "nope.pem")}: no such file`);
    expect(() => readCaFile(dir, "f")).toThrow(`f: cannot read ${dir}: it is a directory`);
    const key = join(dir, "key.pem");
    writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    expect(() => readCaFile(key, "f")).toThrow(`f: ${key} holds no PEM certificate`);
    const broken = join(dir, "broken.pem");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
    expect(() => readCaFile(broken, "f")).toThrow(`f: certificate 1 in ${broken} does not parse`);
  });
});

describe("describeTlsFailure (S3 start-up errors)", () => {
  const failure = (code: string) => Object.assign(new Error("tls"), { code });

  it("says what is wrong with the certificate and what to set", () => {
    expect(describeTlsFailure(failure("SELF_SIGNED_CERT_IN_CHAIN"))).toBe(
      "its certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN); set config.ca_bundle to the PEM file of the CA that signs it",
    );
    expect(describeTlsFailure(failure("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "/ca.pem")).toMatch(/config\.ca_bundle \(\/ca\.pem\) does not hold the CA/);
    expect(describeTlsFailure(failure("ERR_TLS_CERT_ALTNAME_INVALID"))).toMatch(/does not name the host in endpoint_url/);
    expect(describeTlsFailure(failure("CERT_HAS_EXPIRED"))).toMatch(/expired \(CERT_HAS_EXPIRED\)/);
    expect(describeTlsFailure(failure("ERR_SSL_WRONG_VERSION_NUMBER"))).toMatch(/does not speak TLS on that port/);
  });

  it("leaves other failures alone", () => {
    expect(describeTlsFailure(failure("ECONNREFUSED"))).toBeUndefined();
    expect(describeTlsFailure(new Error("no code"))).toBeUndefined();
  });
});
