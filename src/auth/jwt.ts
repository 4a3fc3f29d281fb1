import { createPublicKey, type KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { Attributes, User } from "../files/access-policy.js";
import { AuthenticationError, type TokenVerifier } from "./authenticator.js";

/** Llama Stack's default claims_mapping (claim → attribute), as its oauth2 provider has it. */
export const DEFAULT_CLAIMS_MAPPING: Readonly<Record<string, string>> = {
  sub: "roles",
  username: "roles",
  groups: "teams",
  team: "teams",
  project: "projects",
  tenant: "namespaces",
  namespace: "namespaces",
};

/**
 * Llama Stack's get_attributes_from_claims: each mapped claim (found by dotted path, then as a
 * literal key) adds its values to the attribute: a list as it is, a string split on whitespace.
 */
export function attributesFromClaims(claims: Record<string, unknown>, mapping: Readonly<Record<string, string>>): Attributes {
  const attributes: Attributes = {};
  for (const [claimKey, attribute] of Object.entries(mapping)) {
    let claim: unknown = claims;
    for (const key of claimKey.split(".")) {
      if (isObject(claim) && Object.prototype.hasOwnProperty.call(claim, key)) claim = claim[key];
      else {
        claim = undefined;
        break;
      }
    }
    if ((claim === undefined || claim === null) && Object.prototype.hasOwnProperty.call(claims, claimKey)) claim = claims[claimKey];
    if (claim === undefined || claim === null) continue;
    let values: unknown[];
    if (Array.isArray(claim)) values = claim;
    else if (typeof claim === "string") values = claim.split(/\s+/).filter((v) => v !== "");
    else continue;
    // Attributes are lists of strings; other list members (numbers, objects) cannot be compared as values.
    const strings = values.filter((v): v is string => typeof v === "string");
    if (Object.prototype.hasOwnProperty.call(attributes, attribute)) attributes[attribute]!.push(...strings);
    else attributes[attribute] = strings;
  }
  return attributes;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface JwtOptions {
  /** Keys fetched (and cached) from this JWKS endpoint... */
  jwksUrl?: string;
  /** ...or one PEM public key (SPKI, or an X.509 certificate). */
  publicKey?: string;
  issuer: string;
  audience: string;
  /** The claim naming the principal (default `sub`). */
  principalClaim: string;
  /** Leeway for exp/nbf, for clocks that drift a little. */
  clockToleranceSeconds?: number;
  /** Claim → attribute; unset: DEFAULT_CLAIMS_MAPPING. */
  claimsMapping?: Readonly<Record<string, string>>;
}

// Asymmetric algorithms only: a shared secret would let anyone holding it mint tokens.
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Verifies JWTs with jose: signature, issuer, audience, exp and nbf. */
export class JwtVerifier implements TokenVerifier {
  private readonly key: KeyObject | JWTVerifyGetKey;

  constructor(private readonly options: JwtOptions) {
    if (options.jwksUrl) {
      this.key = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
    } else if (options.publicKey) {
      this.key = createPublicKey(options.publicKey);
    } else {
      throw new Error("jwt needs jwks_url or public_key");
    }
  }

  async verify(token: string): Promise<string | undefined> {
    return (await this.identify(token))?.principal;
  }

  async identify(token: string): Promise<User | undefined> {
    // Not shaped like a JWT: not ours to judge (another verifier, or none, may know it).
    if (!JWT_SHAPE.test(token)) return undefined;
    let payload: Record<string, unknown>;
    try {
      const verify = (key: KeyObject | JWTVerifyGetKey) =>
        jwtVerify(token, key as KeyObject, {
          issuer: this.options.issuer,
          audience: this.options.audience,
          algorithms: ALGORITHMS,
          clockTolerance: this.options.clockToleranceSeconds ?? 30,
        });
      ({ payload } = await verify(this.key));
    } catch (err) {
      throw new AuthenticationError(describe(err));
    }
    const principal = payload[this.options.principalClaim];
    if (typeof principal !== "string" || principal === "") {
      throw new AuthenticationError(`The token has no '${this.options.principalClaim}' claim naming the caller`);
    }
    return { principal, attributes: attributesFromClaims(payload, this.options.claimsMapping ?? DEFAULT_CLAIMS_MAPPING) };
  }
}

/** Enough for a client to fix its token; nothing about our keys. */
function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "The token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `The token's '${err.claim}' claim is not accepted`;
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSEError && err.code === "ERR_JWKS_INVALID") {
    return "The token could not be checked: the key set is unavailable";
  }
  return "Invalid token";
}
