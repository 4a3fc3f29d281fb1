import type { AuthConfig, TlsConfig } from "../config/config.js";
import { ApiKeyVerifier } from "./api-keys.js";
import { BearerAuthenticator, CertificateAuthenticator, type Authenticator, type TokenVerifier } from "./authenticator.js";
import { CustomAuthVerifier } from "./custom.js";
import { JwtVerifier } from "./jwt.js";

/**
 * The authenticator a config describes (bearer tokens, client certificates, or both), or
 * undefined when authentication is off.
 */
export function openAuthenticator(auth: AuthConfig | undefined, tls?: TlsConfig): Authenticator | undefined {
  const bearer = auth && bearerAuthenticator(auth);
  if (tls?.principalFrom !== undefined) return new CertificateAuthenticator(bearer, tls.principalPrecedence);
  return bearer;
}

function bearerAuthenticator(auth: AuthConfig): Authenticator {
  const verifiers: TokenVerifier[] = [];
  if (auth.apiKeys.length > 0) verifiers.push(new ApiKeyVerifier(auth.apiKeys));
  if (auth.jwt) verifiers.push(new JwtVerifier(auth.jwt));
  // Last: it answers for every token, so the others must have had their say.
  if (auth.custom) verifiers.push(new CustomAuthVerifier(auth.custom));
  return new BearerAuthenticator(verifiers);
}
