/**
 * --tls: the run's own test CA and a loopback server certificate (made with openssl, as the tests
 * make theirs, under the run's temp dir), so the service can serve the one port over TLS and every
 * client of it trusts exactly that CA. Nothing is written outside the temp dir.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { makeCa, issueServerCert } from "../test/support/test-certs.js";

export interface BenchTls {
  /** The CA certificate the clients trust, as a file (for grpc-go and grpcio) and as PEM. */
  caFile: string;
  ca: Buffer;
  /** The server's certificate and key, for server.tls. */
  certFile: string;
  keyFile: string;
}

export function makeBenchTls(dir: string): BenchTls {
  const ca = makeCa("Files Bench CA", join(dir, "tls-ca"));
  const leaf = issueServerCert(ca);
  return { caFile: ca.certFile, ca: readFileSync(ca.certFile), certFile: leaf.certFile, keyFile: leaf.keyFile };
}
