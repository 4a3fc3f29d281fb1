/** Process-level plumbing the benchmark scripts share: ordered clean-up, bounded waits, logging. */
import { setTimeout as sleep } from "node:timers/promises";

export const log = (msg: string): void => console.log(`[bench] ${msg}`);

/** A warning that must not scroll by unnoticed. */
export function warnLoudly(msg: string): void {
  const bar = "!".repeat(78);
  console.error(`\n${bar}\n[bench] WARNING: ${msg}\n${bar}\n`);
}

/** Clean-up steps, run last-in first-out, once, each bounded so a stuck step cannot hang the exit. */
export class Cleanup {
  private readonly steps: { name: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<void> | undefined;

  add(name: string, fn: () => Promise<unknown>): void {
    this.steps.push({ name, fn });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const { name, fn } of this.steps.reverse()) {
        const timeout = sleep(20_000, "timeout" as const);
        const outcome = await Promise.race([fn().then(() => "ok" as const), timeout]).catch((err: unknown) => err);
        if (outcome !== "ok") console.error(`[bench] clean-up '${name}' failed: ${outcome === "timeout" ? "timed out" : String(outcome)}`);
      }
    })();
    return this.running;
  }
}

/** Rejects with a message naming `what` if `promise` has not settled after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
