/**
 * Linux /proc readers for the processes under test: resident memory (VmRSS, VmHWM),
 * CPU time, and a few identity checks. Everything here is synchronous and cheap
 * (one small file read), so it can run every 100 ms without disturbing the measurement.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";

const KiB = 1024;

/** Clock ticks per second for /proc/<pid>/stat (almost always 100). */
const CLK_TCK = (() => {
  try {
    return Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }), 10) || 100;
  } catch {
    return 100;
  }
})();

/** A field of /proc/<pid>/status given in kB, as bytes. */
function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(text);
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]) * KiB;
}

export const rssBytes = (pid: number): number => statusKb(pid, "VmRSS");
export const peakRssBytes = (pid: number): number => statusKb(pid, "VmHWM");

/**
 * Resets the process's VmHWM to its current VmRSS (Linux 4.0+: "5" to /proc/PID/clear_refs), so a
 * later VmHWM is the peak of what ran since. False where that is not permitted (then VmHWM is the
 * peak since the process started).
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return peakRssBytes(pid) <= rssBytes(pid) + 4 * KiB * 1024;
  } catch {
    return false;
  }
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces; fields after its ')' are space separated.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Nanoseconds on CPU of the process's live threads (schedstat's sum_exec_runtime); undefined where not exposed. */
function liveThreadsCpuNanos(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    return Number.isFinite(ns) ? ns : undefined;
  } catch {
    return undefined; // no schedstat, or a thread exited between readdir and read
  }
}

/**
 * Starts a CPU stopwatch on a process; the returned function gives its utime + stime since then,
 * in seconds. /proc/PID/stat counts in clock ticks (10 ms), too coarse for a 16 MiB transfer or
 * a few hundred calls, so the live threads' schedstat (nanoseconds, the same runtime the kernel
 * splits into utime and stime) is used; but that forgets threads that exited meanwhile, which
 * /proc/PID/stat keeps: when the tick count is ahead by more than its rounding (two ticks), it is taken.
 */
export function cpuStopwatch(pid: number): () => number {
  const ticks0 = cpuSeconds(pid);
  const ns0 = liveThreadsCpuNanos(pid);
  return () => {
    const coarse = cpuSeconds(pid) - ticks0;
    const ns = liveThreadsCpuNanos(pid);
    if (ns0 === undefined || ns === undefined) return coarse;
    const fine = (ns - ns0) / 1e9;
    return coarse - fine > 2 / CLK_TCK ? coarse : fine;
  };
}

/** The process's argv, from /proc/<pid>/cmdline. */
export function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((s) => s !== "");
}

/** Child process ids of `pid` (over all its threads). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    } catch {
      /* thread exited meanwhile */
    }
  }
  return out;
}

/**
 * Checks that `pid` is itself the Node process running `script` (not a shell or npm wrapper
 * around it) and that it has no child processes whose memory would be missed.
 */
export function verifyNodeProcess(pid: number, script: string): { exe: string; argv: string[] } {
  const exe = readlinkSync(`/proc/${pid}/exe`);
  const argv = commandLine(pid);
  if (exe !== realpathSync(process.execPath)) throw new Error(`pid ${pid} runs ${exe}, not this Node (${process.execPath})`);
  if (!argv.some((a) => a.endsWith(script))) throw new Error(`pid ${pid} is not running ${script}: ${argv.join(" ")}`);
  const children = childPids(pid);
  if (children.length > 0) throw new Error(`pid ${pid} has child processes ${children.join(", ")}: its RSS alone would miss them`);
  return { exe, argv };
}

/** The pid of a running process whose argv contains every one of `needles`, if any. */
export function findProcess(needles: string[]): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = commandLine(Number(entry)).join(" ");
      if (needles.every((n) => argv.includes(n))) return Number(entry);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return undefined;
}

/** Samples a process's VmRSS on an interval and keeps the largest value seen per phase. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private phasePeak = 0;
  private phaseStart = 0;
  samples = 0;
  /** This phase's samples: [milliseconds since start(), VmRSS bytes]. */
  timeline: [number, number][] = [];

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {}

  /** Starts a new phase: resets the phase peak and samples until stop(). */
  start(): void {
    this.stop();
    this.phasePeak = 0;
    this.phaseStart = performance.now();
    this.timeline = [];
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  /** Stops sampling; returns the largest VmRSS seen since start(). */
  stop(): number {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.sample();
    }
    return this.phasePeak;
  }

  private sample(): void {
    try {
      const rss = rssBytes(this.pid);
      this.phasePeak = Math.max(this.phasePeak, rss);
      this.timeline.push([Math.round(performance.now() - this.phaseStart), rss]);
      this.samples++;
    } catch {
      /* the process is gone; the caller will notice */
    }
  }
}
