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
}

/** The request carried no usable credentials; the message says which way it failed, never why a key differs. */
export class AuthenticationError extends Error {
  override readonly name = "AuthenticationError";
}

export interface TokenVerifier {
  /** The principal for `token`, or undefined when this verifier does not know it. */
  verify(token: string): Promise<string | undefined>;
}

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

/** Tries each verifier in turn (API keys, then JWTs); the first that recognises the token wins. */
export class BearerAuthenticator implements Authenticator {
  constructor(private readonly verifiers: readonly TokenVerifier[]) {}

  async authenticate(authorization: string | undefined): Promise<string> {
    if (authorization === undefined || authorization.trim() === "") {
      throw new AuthenticationError("Missing credentials: send 'Authorization: Bearer <API key or token>'");
    }
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined) throw new AuthenticationError("The Authorization header must be 'Bearer <API key or token>'");
    for (const verifier of this.verifiers) {
      const principal = await verifier.verify(token);
      if (principal !== undefined) return principal;
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
    const hasToken = authorization !== undefined && authorization.trim() !== "";
    if (certificatePrincipal !== undefined && (this.precedence === "certificate" || !hasToken || !this.bearer)) return certificatePrincipal;
    if (this.bearer && hasToken) return this.bearer.authenticate(authorization);
    throw new AuthenticationError(
      this.bearer
        ? "Missing credentials: connect with a client certificate, or send 'Authorization: Bearer <API key or token>'"
        : "Missing credentials: this server identifies callers by client certificate; connect with one signed by its client CA",
    );
  }
}
