import type { PeerCertificate, TLSSocket } from "node:tls";

export type PrincipalSource = "subject_cn" | "san_uri" | "san_dns";

const PEER_PRINCIPAL = Symbol("files.peerPrincipal");

type Tagged = { [PEER_PRINCIPAL]?: string };

/**
 * Called once per connection, after the handshake: a client certificate that the client CA
 * verified names a principal; one that failed verification (client_auth optional) never does.
 */
export function rememberPeerPrincipal(socket: TLSSocket, from: PrincipalSource | undefined): void {
  if (from === undefined || !socket.authorized) return;
  const principal = principalOfCertificate(socket.getPeerCertificate(), from);
  if (principal !== undefined) (socket as unknown as Tagged)[PEER_PRINCIPAL] = principal;
}

/**
 * The principal of the connection a request came on, or undefined. `socket` may be node:http2's
 * proxy of the session socket, which reads the property through; once the session has gone it
 * throws, and a request then has no certificate principal.
 */
export function peerPrincipalOf(socket: unknown): string | undefined {
  try {
    return (socket as Tagged | undefined)?.[PEER_PRINCIPAL];
  } catch {
    return undefined;
  }
}

/** The first name of the kind asked for; names with control characters are never principals. */
export function principalOfCertificate(cert: PeerCertificate, from: PrincipalSource): string | undefined {
  let name: string | undefined;
  if (from === "subject_cn") {
    const cn = cert.subject?.CN as string | string[] | undefined;
    name = Array.isArray(cn) ? cn[0] : cn;
  } else {
    const prefix = from === "san_uri" ? "URI:" : "DNS:";
    name = subjectAltNames(cert.subjectaltname).find((entry) => entry.startsWith(prefix))?.slice(prefix.length);
  }
  if (name === undefined || name === "" || name.length > 255 || /[\u0000-\u001f\u007f]/.test(name)) return undefined;
  return name;
}

/** Node's "DNS:a, URI:b, IP Address:c" text, split; quoted entries (with commas inside) kept whole. */
function subjectAltNames(text: string | undefined): string[] {
  if (!text) return [];
  const entries: string[] = [];
  const pattern = /([A-Za-z ]+):(?:"((?:[^"\\]|\\.)*)"|([^,]*))(?:,\s*|$)/g;
  for (const match of text.matchAll(pattern)) {
    const value = match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : (match[3] ?? "");
    entries.push(`${match[1]!.trim()}:${value.trim()}`);
  }
  return entries;
}
