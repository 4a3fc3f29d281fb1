import { createHash, timingSafeEqual } from "node:crypto";
import type { TokenVerifier } from "./authenticator.js";

export interface ApiKey {
  key: string;
  principal: string;
}

/**
 * Static API keys. Keys are compared as SHA-256 digests with timingSafeEqual, and every key is
 * compared on every call, so neither a key's length nor its position leaks through timing.
 */
export class ApiKeyVerifier implements TokenVerifier {
  private readonly digests: ReadonlyArray<{ digest: Buffer; principal: string }>;

  constructor(keys: readonly ApiKey[]) {
    this.digests = keys.map(({ key, principal }) => ({ digest: sha256(key), principal }));
  }

  async verify(token: string): Promise<string | undefined> {
    const presented = sha256(token);
    let match: string | undefined;
    for (const { digest, principal } of this.digests) {
      if (timingSafeEqual(presented, digest) && match === undefined) match = principal;
    }
    return match;
  }
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
