import type { User } from "../files/access-policy.js";

/**
 * Who is calling. Transports pass the request's Authorization header in and get a principal
 * back, which the core records as each file's owner and filters by.
 */
export interface Authenticator {
  /**
   * Resolves with the principal, or rejects with an AuthenticationError. `certificatePrincipal`
   * is the name a verified client certificate gave the connection (mutual TLS), if any.
   */
  authenticate(authorization: string | undefined, certificatePrincipal?: string): Promise<string>;
  /** As authenticate, with the caller's attributes (from API key config, JWT claims, or a custom endpoint). */
  identify?(authorization: string | undefined, certificatePrincipal?: string, request?: RequestContext): Promise<User>;
}

/** The request being authenticated, for authenticators that decide by it (the custom endpoint). */
export interface RequestContext {
  method: string;
  path: string;
  params?: Record<string, string[]>;
}

/** The caller with its attributes, from any Authenticator (one without identify gives none). */
export async function identifyCaller(
  authenticator: Authenticator,
  authorization: string | undefined,
  certificatePrincipal?: string,
  request?: RequestContext,
): Promise<User> {
  if (authenticator.identify) return authenticator.identify(authorization, certificatePrincipal, request);
  return { principal: await authenticator.authenticate(authorization, certificatePrincipal), attributes: null };
}

/** The request carried no usable credentials; the message says which way it failed, never why a key differs. */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
}

export interface TokenVerifier {
  /** The principal for `token`, or undefined when this verifier does not know it. */
  verify(token: string): Promise<string | undefined>;
  /** As verify, with the principal's attributes; verifiers without it give none. */
  identify?(token: string, request?: RequestContext): Promise<User | undefined>;
}

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

/** Tries each verifier in turn (API keys, then JWTs); the first that recognises the token wins. */
export class BearerAuthenticator implements Authenticator {
  constructor(private readonly verifiers: readonly TokenVerifier[]) {}

  async authenticate(authorization: string | undefined): Promise<string> {
    return (await this.identify(authorization)).principal;
  }

  async identify(authorization: string | undefined, _certificatePrincipal?: string, request?: RequestContext): Promise<User> {
    if (authorization === undefined || authorization.trim() === "") {
      throw new AuthenticationError("Missing credentials: send 'Authorization: Bearer <API key or token>'");
    }
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined) throw new AuthenticationError("The Authorization header must be 'Bearer <API key or token>'");
    for (const verifier of this.verifiers) {
      if (verifier.identify) {
        const user = await verifier.identify(token, request);
        if (user !== undefined) return user;
        continue;
      }
      const principal = await verifier.verify(token);
      if (principal !== undefined) return { principal, attributes: null };
    }
    throw new AuthenticationError("Invalid API key or token");
  }
}

/**
 * Mutual TLS principals: a verified client certificate names the caller, alone or beside bearer
 * tokens. When a call carries both, `precedence` says whose principal it is; a token that is
 * presented and loses is not checked, and one that wins must be valid.
 */
export class CertificateAuthenticator implements Authenticator {
  constructor(
    private readonly bearer: Authenticator | undefined,
    private readonly precedence: "token" | "certificate",
  ) {}

  async authenticate(authorization: string | undefined, certificatePrincipal?: string): Promise<string> {
    return (await this.identify(authorization, certificatePrincipal)).principal;
  }

  async identify(authorization: string | undefined, certificatePrincipal?: string, request?: RequestContext): Promise<User> {
    const hasToken = authorization !== undefined && authorization.trim() !== "";
    if (certificatePrincipal !== undefined && (this.precedence === "certificate" || !hasToken || !this.bearer)) {
      return { principal: certificatePrincipal, attributes: null };
    }
    if (this.bearer && hasToken) return identifyCaller(this.bearer, authorization, undefined, request);
    throw new AuthenticationError(
      this.bearer
        ? "Missing credentials: connect with a client certificate, or send 'Authorization: Bearer <API key or token>'"
        : "Missing credentials: this server identifies callers by client certificate; connect with one signed by its client CA",
    );
  }
}
