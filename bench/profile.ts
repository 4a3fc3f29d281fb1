/**
 * Reads the V8 CPU profiles `node --cpu-prof` wrote (one per server process, at its exit) and
 * ranks functions by self time, summed over all of them. Only samples taken inside a measured
 * phase count (V8 stamps samples with CLOCK_MONOTONIC, the clock harness.ts records the phases
 * with), so each process's start-up (module loading, migrations) and warm-up stay out of the
 * ranking. Each sample is charged the time to the next one. The pseudo-nodes (idle), (program)
 * and (garbage collector) are reported apart from the functions.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { REPO_ROOT } from "../test/support/server-process.js";

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  name: string;
  location: string;
  selfMs: number;
  /** Share of the busy (non-idle) measured time. */
  share: number;
}

export interface ProfileSummary {
  /** Per profile: its process, the phase it served, and its measured busy time. */
  files: { file: string; pid: number; phase: string; busyMs: number; measuredMs: number }[];
  busyMs: number;
  idleMs: number;
  gcMs: number;
  programMs: number;
  top: HotFunction[];
  /** Self time grouped by where the code lives: a package, a node: module, a source file. */
  byArea: { area: string; selfMs: number; share: number }[];
}

/** node_modules/@scope/pkg, node_modules/pkg, node:internal/http2, dist/src/files/x.js, (native). */
function area(loc: string): string {
  const path = loc.replace(/:\d+$/, "");
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  if (path.startsWith("node:")) return path.split("/").slice(0, 2).join("/");
  return path;
}

const PSEUDO = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

function location(url: string, line: number): string {
  if (!url) return "(native)";
  const path = url.startsWith("file://") ? new URL(url).pathname : url;
  const rel = path.startsWith(REPO_ROOT) ? relative(REPO_ROOT, path) : path;
  return `${rel}:${line + 1}`;
}

export async function summarizeProfiles(
  dir: string,
  phaseOfPid: Map<number, string>,
  windows: Map<number, [number, number][]>,
  topN = 25,
): Promise<ProfileSummary | undefined> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".cpuprofile")).sort();
  } catch {
    return undefined;
  }
  if (names.length === 0) return undefined;
  const selfMs = new Map<string, { name: string; location: string; ms: number }>();
  const summary: ProfileSummary = { files: [], busyMs: 0, idleMs: 0, gcMs: 0, programMs: 0, top: [], byArea: [] };
  for (const name of names) {
    const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(name)?.[1] ?? NaN);
    const mine = windows.get(pid) ?? [];
    if (mine.length === 0) continue; // a process that served no measured phase (e.g. the one that ran the migrations)
    const profile = JSON.parse(await readFile(join(dir, name), "utf8")) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const inWindow = (t: number) => mine.some(([a, b]) => t >= a && t <= b);
    let t = profile.startTime;
    let busy = 0;
    let measured = 0;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i] ?? 0;
      const ms = ((profile.timeDeltas[i + 1] ?? 0) > 0 ? profile.timeDeltas[i + 1]! : 0) / 1000;
      if (!inWindow(t) || ms === 0) continue;
      measured += ms;
      const node = nodes.get(profile.samples[i]!);
      if (!node) continue;
      const fn = node.callFrame.functionName || "(anonymous)";
      if (fn === "(idle)") summary.idleMs += ms;
      else busy += ms;
      if (fn === "(garbage collector)") summary.gcMs += ms;
      if (fn === "(program)") summary.programMs += ms;
      if (PSEUDO.has(fn)) continue;
      const loc = location(node.callFrame.url, node.callFrame.lineNumber);
      const key = `${fn} ${loc}`;
      const entry = selfMs.get(key) ?? { name: fn, location: loc, ms: 0 };
      entry.ms += ms;
      selfMs.set(key, entry);
    }
    summary.files.push({ file: name, pid, phase: phaseOfPid.get(pid) ?? "?", busyMs: busy, measuredMs: measured });
    summary.busyMs += busy;
  }
  const areas = new Map<string, number>();
  for (const e of selfMs.values()) areas.set(area(e.location), (areas.get(area(e.location)) ?? 0) + e.ms);
  summary.byArea = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([name, ms]) => ({ area: name, selfMs: ms, share: ms / (summary.busyMs || 1) }));
  summary.top = [...selfMs.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, topN)
    .map((e) => ({ name: e.name, location: e.location, selfMs: e.ms, share: e.ms / (summary.busyMs || 1) }));
  return summary;
}

export function formatProfile(summary: ProfileSummary, dir: string): string {
  const lines = [
    `CPU profile of this service, measured phases only (${summary.files.length} server processes; profiles in ${relative(REPO_ROOT, dir) || dir}):`,
    `busy ${(summary.busyMs / 1000).toFixed(1)} s (GC ${(summary.gcMs / 1000).toFixed(1)} s, V8/native "(program)" ${(summary.programMs / 1000).toFixed(1)} s), idle ${(summary.idleMs / 1000).toFixed(1)} s`,
    "",
    "  self ms   busy%  function  location",
  ];
  for (const f of summary.top) {
    lines.push(`${f.selfMs.toFixed(0).padStart(8)}  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.location}`);
  }
  lines.push("", "  self ms   busy%  where (grouped)");
  for (const a of summary.byArea) lines.push(`${a.selfMs.toFixed(0).padStart(8)}  ${(a.share * 100).toFixed(1).padStart(5)}%  ${a.area}`);
  lines.push("", "Busy per process: " + summary.files.map((f) => `${f.phase} ${(f.busyMs / 1000).toFixed(1)} s`).join("; "));
  if (summary.files.length > 0 && summary.files.every((f) => f.measuredMs === 0)) {
    lines.push("NOTE: no sample fell inside a measured phase: the profile clock did not match CLOCK_MONOTONIC here.");
  }
  return lines.join("\n");
}
