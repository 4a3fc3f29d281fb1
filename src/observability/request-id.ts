import { randomBytes } from "node:crypto";

const MAX_LENGTH = 128;
/** Visible ASCII only: no spaces or control characters that could split or forge a log line or header. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

/** The caller's request id when it is sane (1–128 visible ASCII characters), else a new random one. */
export function requestIdFrom(header: string | readonly string[] | null | undefined): string {
  const value = typeof header === "string" ? header : header?.[0];
  return typeof value === "string" && isSaneRequestId(value) ? value : newRequestId();
}

export function isSaneRequestId(value: string): boolean {
  return value.length <= MAX_LENGTH && VISIBLE_ASCII.test(value);
}

/** Random bytes drawn at once for many ids: one randomBytes call costs about as much as 100 slices of its result. */
const POOL_BYTES = 16 * 256;
let pool = Buffer.alloc(0);
let offset = POOL_BYTES;

/** 16 random bytes as 32 hex characters. */
export function newRequestId(): string {
  if (offset >= POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  offset += 16;
  return pool.toString("hex", offset - 16, offset);
}

export const REQUEST_ID_HEADER = "x-request-id";
