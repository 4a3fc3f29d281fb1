import { createHash, timingSafeEqual } from "node:crypto";
import type { Attributes, User } from "../files/access-policy.js";
import type { TokenVerifier } from "./authenticator.js";

export interface ApiKey {
  key: string;
  principal: string;
  /** For the access policy: roles, teams, projects, namespaces (or any other name). */
  attributes?: Attributes;
}

/**
 * Static API keys. Keys are compared as SHA-256 digests with timingSafeEqual, and every key is
 * compared on every call, so neither a key's length nor its position leaks through timing.
 */
export class ApiKeyVerifier implements TokenVerifier {
  private readonly digests: ReadonlyArray<{ digest: Buffer; user: User }>;

  constructor(keys: readonly ApiKey[]) {
    this.digests = keys.map(({ key, principal, attributes }) => ({ digest: sha256(key), user: { principal, attributes: attributes ?? null } }));
  }

  async verify(token: string): Promise<string | undefined> {
    return (await this.identify(token))?.principal;
  }

  async identify(token: string): Promise<User | undefined> {
    const presented = sha256(token);
    let match: User | undefined;
    for (const { digest, user } of this.digests) {
      if (timingSafeEqual(presented, digest) && match === undefined) match = user;
    }
    return match;
  }
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
