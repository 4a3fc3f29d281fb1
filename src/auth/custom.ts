import { createHash } from "node:crypto";
import type { Attributes, User } from "../files/access-policy.js";
import { unavailable } from "../files/errors.js";
import { AuthenticationError, type RequestContext, type TokenVerifier } from "./authenticator.js";

export interface CustomAuthOptions {
  /** Where the token is POSTed. */
  endpoint: string;
  timeoutMs: number;
  /** How long an accepted token's answer is reused; 0: ask every time. */
  cacheTtlMs: number;
  /** At most this many answers are kept (the oldest goes first). */
  cacheMaxEntries: number;
  now?: () => number;
}

/**
 * Llama Stack's `custom` authenticator: the bearer token, with the request's method and path, is
 * POSTed as `{api_key, request: {path, method, headers, params}}` to an endpoint, which answers 200
 * with `{principal, attributes}` to accept it. Any other status refuses it (401); an answer that
 * is not that shape is refused too; an endpoint that does not answer in time is unavailable (503).
 * Accepted answers are cached under the token's SHA-256, never the token itself.
 */
export class CustomAuthVerifier implements TokenVerifier {
  private readonly cache = new Map<string, { user: User; until: number }>();
  private readonly now: () => number;

  constructor(private readonly options: CustomAuthOptions) {
    this.now = options.now ?? Date.now;
  }

  async verify(token: string): Promise<string | undefined> {
    return (await this.identify(token))?.principal;
  }

  async identify(token: string, request?: RequestContext): Promise<User | undefined> {
    const key = createHash("sha256").update(token, "utf8").digest("hex");
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.user;
    if (cached) this.cache.delete(key);
    const user = await this.ask(token, request);
    if (this.options.cacheTtlMs > 0 && this.options.cacheMaxEntries > 0) {
      while (this.cache.size >= this.options.cacheMaxEntries) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { user, until: this.now() + this.options.cacheTtlMs });
    }
    return user;
  }

  /** Entries held now (for tests and metrics). */
  get cacheSize(): number {
    return this.cache.size;
  }

  private async ask(token: string, request: RequestContext | undefined): Promise<User> {
    const body = JSON.stringify({
      api_key: token,
      request: { path: request?.path ?? "", method: request?.method ?? "", headers: {}, params: request?.params ?? {} },
    });
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.options.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
        redirect: "error",
      });
      text = await response.text();
    } catch (err) {
      throw unavailable("The authentication endpoint", err);
    }
    if (response.status !== 200) throw new AuthenticationError(`The authentication endpoint refused the token (${response.status})`);
    const user = parseAnswer(text);
    if (!user) throw new AuthenticationError("The authentication endpoint's answer is not {principal, attributes}");
    return user;
  }
}

function parseAnswer(text: string): User | undefined {
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof answer !== "object" || answer === null || Array.isArray(answer)) return undefined;
  const { principal, attributes } = answer as Record<string, unknown>;
  if (typeof principal !== "string" || principal === "") return undefined;
  if (attributes === undefined || attributes === null) return { principal, attributes: null };
  if (typeof attributes !== "object" || Array.isArray(attributes)) return undefined;
  const out: Attributes = {};
  for (const [name, values] of Object.entries(attributes as Record<string, unknown>)) {
    if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) return undefined;
    out[name] = values as string[];
  }
  return { principal, attributes: out };
}
