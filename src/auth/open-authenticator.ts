import type { AuthConfig } from "../config/config.js";
import { ApiKeyVerifier } from "./api-keys.js";
import { BearerAuthenticator, type Authenticator, type TokenVerifier } from "./authenticator.js";
import { JwtVerifier } from "./jwt.js";

/** The authenticator a config describes, or undefined when authentication is off. */
export function openAuthenticator(auth: AuthConfig | undefined): Authenticator | undefined {
  if (!auth) return undefined;
  const verifiers: TokenVerifier[] = [];
  if (auth.apiKeys.length > 0) verifiers.push(new ApiKeyVerifier(auth.apiKeys));
  if (auth.jwt) verifiers.push(new JwtVerifier(auth.jwt));
  return new BearerAuthenticator(verifiers);
}
