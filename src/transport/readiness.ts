/** A readiness check still pending after this long counts as not ready: a hung dependency. */
export const READINESS_TIMEOUT_MS = 5_000;

/**
 * Runs `ready` with a deadline, for the probes (/readyz and gRPC health): a dependency that hangs
 * (a frozen database, a black-holed S3) must read as "not ready" promptly, not leave the probe waiting.
 */
export async function readyWithin(ready: () => Promise<void>, timeoutMs = READINESS_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`readiness check timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([ready(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
