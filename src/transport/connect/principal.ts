import { createContextKey, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { peerPrincipalOf } from "../tls/peer-principal.js";

/** The authenticated caller of an RPC; null when authentication is off. Set by the auth interceptor. */
export const PRINCIPAL = createContextKey<string | null>(null, { description: "authenticated principal" });

/** The principal a verified client certificate gave the call's connection (mutual TLS); undefined: none. */
export const CERTIFICATE_PRINCIPAL = createContextKey<string | undefined>(undefined, { description: "client certificate principal" });

export const principalOf = (ctx: HandlerContext): string | null => ctx.values.get(PRINCIPAL);

/** Mutual TLS: records the principal the connection's client certificate names, for the auth interceptor. */
export function withCertificatePrincipal(values: ContextValues, socket: unknown): ContextValues {
  const principal = peerPrincipalOf(socket);
  return principal === undefined ? values : values.set(CERTIFICATE_PRINCIPAL, principal);
}
