import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { TlsConfig } from "../../config/config.js";

/** The files a TLS config names, read and checked: what a secure context is made of. */
export interface ServerCredentials {
  /** For tls.createServer / setSecureContext. */
  context: SecureContextOptions;
  /** The serving (leaf) certificate. */
  certificate: X509Certificate;
  notAfter: Date;
}

/** A certificate file that cannot serve; the message names the file and the problem. */
export class TlsCredentialsError extends Error {
  override readonly name = "TlsCredentialsError";
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads cert_file (leaf first, then its chain), key_file and client_ca_file, and checks that they
 * fit together before anything serves with them: a broken file fails here with its name, not at
 * the first client's handshake.
 */
export function loadServerCredentials(tls: TlsConfig): ServerCredentials {
  const certPem = readText(tls.certFile, "cert_file");
  const certs = certPem.match(PEM_CERTIFICATE) ?? [];
  if (certs.length === 0) throw new TlsCredentialsError(`server.tls.cert_file ${tls.certFile} holds no PEM certificate`);
  const certificate = parseCertificate(certs[0]!, tls.certFile, "cert_file");
  for (const extra of certs.slice(1)) parseCertificate(extra, tls.certFile, "cert_file");

  const keyPem = readText(tls.keyFile, "key_file");
  let key;
  try {
    key = createPrivateKey({ key: keyPem, ...(tls.keyPassphrase !== undefined && { passphrase: tls.keyPassphrase }) });
  } catch (err) {
    const encrypted = /ENCRYPTED/.test(keyPem);
    const why = encrypted
      ? tls.keyPassphrase === undefined
        ? "it is encrypted and no key_passphrase is set"
        : "key_passphrase does not decrypt it"
      : `it is not a PEM private key (${(err as Error).message})`;
    throw new TlsCredentialsError(`server.tls.key_file ${tls.keyFile}: ${why}`);
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new TlsCredentialsError(`server.tls.key_file ${tls.keyFile} is not the private key of the certificate in ${tls.certFile}`);
  }

  let clientCa: string | undefined;
  if (tls.clientCaFile !== undefined && tls.clientAuth !== "none") {
    clientCa = readText(tls.clientCaFile, "client_ca_file");
    const cas = clientCa.match(PEM_CERTIFICATE) ?? [];
    if (cas.length === 0) throw new TlsCredentialsError(`server.tls.client_ca_file ${tls.clientCaFile} holds no PEM certificate`);
    for (const ca of cas) parseCertificate(ca, tls.clientCaFile, "client_ca_file");
  }

  const context: SecureContextOptions = {
    cert: certPem,
    key: keyPem,
    ...(tls.keyPassphrase !== undefined && { passphrase: tls.keyPassphrase }),
    ...(clientCa !== undefined && { ca: clientCa }),
    minVersion: tls.minVersion,
  };
  try {
    createSecureContext(context);
  } catch (err) {
    throw new TlsCredentialsError(`server.tls: the certificate files cannot be used: ${(err as Error).message}`);
  }
  return { context, certificate, notAfter: new Date(certificate.validTo) };
}

function readText(path: string, field: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new TlsCredentialsError(`cannot read server.tls.${field} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function parseCertificate(pem: string, path: string, field: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsCredentialsError(`server.tls.${field} ${path} holds a certificate that cannot be parsed: ${(err as Error).message}`);
  }
}
