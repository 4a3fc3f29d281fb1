import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Certificates made by the tests with openssl (OpenSSL 3.0 is on the machines): a CA, and leaves
 * it signs with any names and validity window. Nothing here is committed; every key is new per run.
 */
export interface TestCa {
  name: string;
  certFile: string;
  keyFile: string;
  certPem: string;
  dir: string;
}

export interface TestCert {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  /** Upper-case hex, as node:tls reports `serialNumber`. */
  serial: string;
}

export interface LeafOptions {
  /** Subject common name. */
  cn: string;
  /** subjectAltName DNS names; a server leaf gets localhost by default. */
  dns?: string[];
  ips?: string[];
  uris?: string[];
  /** Validity window (openssl's YYYYMMDDHHMMSSZ); default: from an hour ago for 30 days. */
  notBefore?: Date;
  notAfter?: Date;
  /** The PEM key is encrypted with this passphrase (AES-256). */
  passphrase?: string;
  /** A chain: the leaf file holds the leaf followed by this intermediate's certificate. */
  appendChain?: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function asn1Time(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");
}

/** A new self-signed CA (P-256), in its own temp directory unless `dir` is given. */
export function makeCa(name = "Files Test CA", dir?: string): TestCa {
  const where = dir ?? mkdtempSync(join(tmpdir(), "files-test-ca-"));
  mkdirSync(join(where, "db"), { recursive: true });
  writeFileSync(join(where, "db/index"), "");
  const certFile = join(where, "ca.crt");
  const keyFile = join(where, "ca.key");
  openssl(
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "30", "-subj", `/CN=${name}`,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ],
    where,
  );
  writeFileSync(
    join(where, "ca.cnf"),
    [
      "[ca]", "default_ca = test", "[test]", "database = db/index", "new_certs_dir = db", "serial = db/serial",
      "default_md = sha256", "policy = any", "copy_extensions = none", "unique_subject = no", "[any]", "commonName = supplied", "",
    ].join("\n"),
  );
  return { name, certFile, keyFile, certPem: readFileSync(certFile, "utf8"), dir: where };
}

let sequence = 0;

/** A leaf certificate signed by `ca`, usable for both server and client authentication. */
export function issueCert(ca: TestCa, options: LeafOptions): TestCert {
  const base = join(ca.dir, `leaf-${process.pid}-${++sequence}`);
  // 16 hex digits led by 1-7: positive in ASN.1 and no leading zero, so it reads back unchanged.
  const serial = `${1 + (randomBytes(1)[0]! % 7)}${randomBytes(8).toString("hex").toUpperCase().slice(1)}`;
  writeFileSync(join(ca.dir, "db/serial"), `${serial}\n`);
  const sans = [
    ...(options.dns ?? []).map((n) => `DNS:${n}`),
    ...(options.ips ?? []).map((n) => `IP:${n}`),
    ...(options.uris ?? []).map((n) => `URI:${n}`),
  ];
  writeFileSync(
    `${base}.ext`,
    [
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(",")}`] : []),
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth,clientAuth",
      "",
    ].join("\n"),
  );
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${options.cn}`], ca.dir);
  const notBefore = options.notBefore ?? new Date(Date.now() - 3600_000);
  const notAfter = options.notAfter ?? new Date(Date.now() + 30 * 86400_000);
  openssl(
    [
      "ca", "-batch", "-config", "ca.cnf", "-cert", ca.certFile, "-keyfile", ca.keyFile, "-in", `${base}.csr`, "-out", `${base}.crt`,
      "-startdate", asn1Time(notBefore), "-enddate", asn1Time(notAfter), "-extfile", `${base}.ext`, "-notext",
    ],
    ca.dir,
  );
  let keyPem = readFileSync(`${base}.key`, "utf8");
  if (options.passphrase !== undefined) {
    openssl(["pkey", "-in", `${base}.key`, "-out", `${base}.enc.key`, "-aes256", "-passout", `pass:${options.passphrase}`], ca.dir);
    keyPem = readFileSync(`${base}.enc.key`, "utf8");
    writeFileSync(`${base}.key`, keyPem);
  }
  let certPem = readFileSync(`${base}.crt`, "utf8");
  if (options.appendChain) {
    certPem += options.appendChain;
    writeFileSync(`${base}.crt`, certPem);
  }
  return { certFile: `${base}.crt`, keyFile: `${base}.key`, certPem, keyPem, serial };
}

/** A server certificate for the loopback names the tests connect by. */
export function issueServerCert(ca: TestCa, options: Partial<LeafOptions> = {}): TestCert {
  return issueCert(ca, { cn: "localhost", dns: ["localhost"], ips: ["127.0.0.1", "::1"], ...options });
}
