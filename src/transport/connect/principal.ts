import { createContextKey, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { User } from "../../files/access-policy.js";
import { peerPrincipalOf } from "../tls/peer-principal.js";

/** The authenticated caller of an RPC; null when authentication is off. Set by the auth interceptor. */
export const PRINCIPAL = createContextKey<string | null>(null, { description: "authenticated principal" });

/** The principal a verified client certificate gave the call's connection (mutual TLS); undefined: none. */
export const CERTIFICATE_PRINCIPAL = createContextKey<string | undefined>(undefined, { description: "client certificate principal" });

/** The authenticated caller with its attributes; null when authentication is off. Set by the auth interceptor. */
export const CALLER = createContextKey<User | null>(null, { description: "authenticated caller" });

/** Who calls, for the core: the user with its attributes, or null when authentication is off. */
export const principalOf = (ctx: HandlerContext): User | null => ctx.values.get(CALLER);

/** Mutual TLS: records the principal the connection's client certificate names, for the auth interceptor. */
export function withCertificatePrincipal(values: ContextValues, socket: unknown): ContextValues {
  const principal = peerPrincipalOf(socket);
  return principal === undefined ? values : values.set(CERTIFICATE_PRINCIPAL, principal);
}
