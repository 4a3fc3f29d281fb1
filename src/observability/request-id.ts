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

/** 16 random bytes as 32 hex characters. */
export function newRequestId(): string {
  return randomBytes(16).toString("hex");
}

export const REQUEST_ID_HEADER = "x-request-id";
