import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../../gen/ts/grpc/health/v1/health_pb.js";
import { READINESS_TIMEOUT_MS, readyWithin } from "../readiness.js";

export interface HealthOptions {
  /** Resolves when the service can do its work; the one status every known service reports. */
  ready: () => Promise<void>;
  /** Service names with a status besides "" (the server as a whole). */
  services: readonly string[];
  /** How often a Watch re-checks readiness. */
  pollMs?: number;
  /** A readiness check still pending after this long counts as NOT_SERVING (a hung dependency). */
  checkTimeoutMs?: number;
  /** Aborted when the server starts shutting down: watchers are told NOT_SERVING and released. */
  shutdown?: AbortSignal;
}

/** Registers grpc.health.v1.Health: Check, Watch and List, all following `ready()`. */
export function registerHealth(router: ConnectRouter, options: HealthOptions): void {
  const known = new Set(["", ...options.services]);
  const pollMs = options.pollMs ?? 2_000;
  const timeoutMs = options.checkTimeoutMs ?? READINESS_TIMEOUT_MS;

  const status = async (): Promise<Status> => {
    try {
      await readyWithin(options.ready, timeoutMs);
      return Status.SERVING;
    } catch {
      return Status.NOT_SERVING;
    }
  };

  router.service(Health, {
    async check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service: ${req.service}`, Code.NotFound);
      return { status: await status() };
    },
    async *watch(req, ctx) {
      // An open Watch would otherwise hold its connection, and so a graceful shutdown, until the grace period ends.
      const signal = options.shutdown ? AbortSignal.any([ctx.signal, options.shutdown]) : ctx.signal;
      if (!known.has(req.service)) {
        // The spec keeps the call open: a service may become known later (ours never do).
        yield { status: Status.SERVICE_UNKNOWN };
        await sleep(2 ** 31 - 1, undefined, { signal }).catch(() => {});
        return;
      }
      let last: Status | undefined;
      while (!signal.aborted) {
        const current = await status();
        if (current !== last) {
          last = current;
          yield { status: current };
        }
        // Ends the loop as soon as the client cancels instead of after the next poll.
        await sleep(pollMs, undefined, { signal }).catch(() => {});
      }
      if (options.shutdown?.aborted && !ctx.signal.aborted) yield { status: Status.NOT_SERVING };
    },
    async list() {
      const current = await status();
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: current }])) };
    },
  });
}
