import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The authenticated caller of an RPC; null when authentication is off. Set by the auth interceptor. */
export const PRINCIPAL = createContextKey<string | null>(null, { description: "authenticated principal" });

export const principalOf = (ctx: HandlerContext): string | null => ctx.values.get(PRINCIPAL);
