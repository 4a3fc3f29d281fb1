import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads a PEM file of trusted CA certificates named in the config (`field`), once, at start.
 * Returns the certificates as PEM text (for node:tls `ca`). A file that cannot be read, or that
 * holds no parsable certificate, is an error naming the field and the file.
 */
export function readCaFile(path: string, field: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (code ?? (err as Error).message);
    throw new Error(`${field}: cannot read ${path}: ${why}`, { cause: err });
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new Error(`${field}: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new Error(`${field}: certificate ${i + 1} in ${path} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
  return blocks.join("\n") + "\n";
}

/** node:tls verification codes that mean no trusted CA signs the peer's chain (the fix: trust its CA). */
export const UNTRUSTED_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_CHAIN_TOO_LONG",
  "INVALID_CA",
]);
