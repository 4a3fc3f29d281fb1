/**
 * What the scenarios share: the run's context (S3, buckets, temp dir, which targets), fresh server
 * processes per measured phase, and the memory probe.
 *
 * Memory method: every measured phase runs on a freshly started server process. After a short
 * warm-up (modules loaded, connections open, first database write done) the probe resets VmHWM
 * with /proc/PID/clear_refs and records VmRSS as the idle RSS; after the phase, VmHWM is the peak.
 * Without clear_refs (not permitted), VmHWM counts from process start and the result says so.
 * VmRSS is also sampled every 100 ms, a cross-check on VmHWM.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Options, Target } from "./options.js";
import { errorMessage, log, warnLoudly, type Cleanup } from "./lifecycle.js";
import { peakRssBytes, resetPeakRss, rssBytes, RssSampler } from "./proc.js";
import type { ForeignCommands } from "./foreign-clients.js";
import type { BenchTls } from "./tls.js";
import { startFloor, startReference, startService, writeLocalServiceConfig, writeServiceConfig, type S3Settings, type ServiceProcess } from "./servers.js";

export interface Context {
  options: Options;
  s3: S3Settings;
  buckets: { direct: string; service: string; floor: string; reference: string };
  /** How to start the grpcgo and grpcio clients, once prepared (foreign-clients.ts). */
  foreignClients: ForeignCommands;
  /** The run's temp dir (removed at the end). */
  dir: string;
  /** The llama-stack venv, or undefined when the reference is not available (then `referenceProblem` says why). */
  referenceVenv: string | undefined;
  referenceProblem: string | undefined;
  /** The largest upload the reference accepts (llama-stack 0.7.3: 100 MiB, fixed in its files router). */
  referenceMaxUploadBytes: number;
  /** Where --cpu-prof writes this run's profiles; undefined without --cpu-prof. */
  cpuProfDir: string | undefined;
  /** pid → the phase it served, to label the CPU profiles. */
  phaseOfPid: Map<number, string>;
  cleanup: Cleanup;
  /** Errors that did not stop the run; the exit code reports them. */
  errors: string[];
  /** With --tls: the run's CA and server certificate. */
  tls: BenchTls | undefined;
}

export interface Memory {
  /** VmRSS right after start. */
  startRssBytes: number;
  /** VmRSS after the warm-up, when the phase began. */
  idleRssBytes: number;
  /** VmHWM after the phase (since the reset at its start when peakReset). */
  peakRssBytes: number;
  /** peak − idle. */
  growthBytes: number;
  /** Largest of the 100 ms VmRSS samples. */
  sampledPeakRssBytes: number;
  /** Whether VmHWM was reset at the start of the phase (else it counts from process start). */
  peakReset: boolean;
}

/**
 * Per server pid, the measured phases as [start, end] in CLOCK_MONOTONIC microseconds: the clock
 * V8 stamps CPU profile samples with, so profile.ts can count only the samples taken while measuring.
 */
export const measuredWindows = new Map<number, [number, number][]>();
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/** Resets the peak at begin() and reads it at end(); records the phase's time window. */
export class MemoryProbe {
  private startedAt = 0;
  private sampler: RssSampler;
  private idle = 0;
  private reset = false;

  constructor(readonly server: ServiceProcess) {
    this.sampler = new RssSampler(server.pid);
  }

  begin(): void {
    this.reset = resetPeakRss(this.server.pid);
    this.idle = rssBytes(this.server.pid);
    this.sampler.start();
    this.startedAt = monotonicMicros();
  }

  end(): Memory {
    const windows = measuredWindows.get(this.server.pid) ?? [];
    windows.push([this.startedAt, monotonicMicros()]);
    measuredWindows.set(this.server.pid, windows);
    const sampled = this.sampler.stop();
    const peak = peakRssBytes(this.server.pid);
    return {
      startRssBytes: this.server.startRssBytes,
      idleRssBytes: this.idle,
      peakRssBytes: peak,
      growthBytes: peak - this.idle,
      sampledPeakRssBytes: sampled,
      peakReset: this.reset,
    };
  }
}

export type ServerKind = "service" | "floor" | "reference";

export const kindOf = (target: Target): ServerKind | "direct" =>
  target === "direct" ? "direct" : target === "llama" ? "reference" : target === "floor" ? "floor" : "service";

/** Servers currently running, so an abort can stop them. */
const running = new Set<ServiceProcess>();

export async function stopAllServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
  running.clear();
}

/** Paths of a server's state for a named database ("transfers", "metadata"). */
export function serviceDbPath(ctx: Context, db: string): string {
  return join(ctx.dir, `service-${db}`, "files.db");
}

export function referenceDir(ctx: Context, db: string): string {
  return join(ctx.dir, `reference-${db}`);
}

/**
 * Starts a fresh server of `kind` on the named database, runs `fn`, always stops it. With `tls`
 * (the service only, and only with --tls), the service serves its one port over TLS.
 */
export async function withServer<T>(ctx: Context, kind: ServerKind, db: string, phase: string, fn: (server: ServiceProcess) => Promise<T>, tls = false): Promise<T> {
  let server: ServiceProcess;
  if (tls && (kind !== "service" || !ctx.tls)) throw new Error(`${phase}: TLS is measured on this service only, with --tls`);
  if (kind === "service") {
    const dbPath = serviceDbPath(ctx, db);
    const dir = join(ctx.dir, `service-${db}`);
    await mkdir(dir, { recursive: true });
    const { maxFileBytes } = ctx.options;
    const serverTls = tls ? ctx.tls : undefined;
    const configPath =
      ctx.options.storage === "local"
        ? await writeLocalServiceConfig(dir, join(ctx.dir, "service-store"), dbPath, maxFileBytes, serverTls)
        : await writeServiceConfig(dir, ctx.s3, ctx.buckets.service, dbPath, maxFileBytes, ctx.options.payloadSigning, serverTls);
    server = await startService(configPath, ctx.cpuProfDir, tls);
    ctx.phaseOfPid.set(server.pid, phase);
  } else if (kind === "floor") {
    server = await startFloor(
      ctx.options.storage === "local"
        ? { storage: "local", dir: join(ctx.dir, "floor-store") }
        : { storage: "s3", s3: { ...ctx.s3, bucket: ctx.buckets.floor }, payloadSigning: ctx.options.payloadSigning },
    );
  } else {
    if (!ctx.referenceVenv) throw new Error(`the reference is not available: ${ctx.referenceProblem}`);
    server = await startReference(ctx.referenceVenv, referenceDir(ctx, db), ctx.s3, ctx.buckets.reference);
  }
  running.add(server);
  try {
    return await fn(server);
  } catch (err) {
    const tail = server.tail();
    throw new Error(`${errorMessage(err)}${tail ? `\n--- last ${server.label} log lines ---\n${tail}` : ""}`, { cause: err });
  } finally {
    running.delete(server);
    await server.stop();
  }
}

/** Runs one measurement; a failure is recorded (loudly) and the run goes on. */
export async function attempt<T>(ctx: Context, what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const message = `${what} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
    ctx.errors.push(`${what} failed: ${errorMessage(err).split("\n")[0]}`);
    warnLoudly(message);
    await stopAllServers().catch(() => undefined);
    return undefined;
  }
}

export const mib = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10;

export { log };
