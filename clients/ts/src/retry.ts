import { isRetryable, toFilesError, type FilesError } from "./errors.js";

export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). */
  attempts: number;
  /** First backoff; doubled per attempt, with full jitter, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 5_000 };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** The delay before retry number `retry` (1-based): full jitter, as AWS's SDKs do it. */
export function backoffMs(policy: RetryPolicy, retry: number): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.random() * cap;
}

/** Runs `fn` until it succeeds, fails with a final error, or runs out of attempts; throws a FilesError. */
export async function withRetry<T>(policy: RetryPolicy, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const e: FilesError = toFilesError(err);
      if (signal?.aborted || !isRetryable(e) || attempt >= policy.attempts) throw e;
      await sleep(backoffMs(policy, attempt), signal);
    }
  }
}

export { sleep };
