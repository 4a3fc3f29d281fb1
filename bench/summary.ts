/**
 * Ratios and the targets from one run's results, and the tables printed on stdout.
 * Ratios are computed only between figures measured in the same run (shared machines are noisy).
 */
import { atMost, check, div, fmt, type TargetCheck } from "./checks.js";
import { formatGrpcVsRest, grpcVsRest, grpcVsRestChecks } from "./grpc-vs-rest.js";
import { formatLibraryVsStubs, libraryChecks, libraryVsStubs } from "./library-vs-stubs.js";
import type { PgResult } from "./pg-metadata.js";
import type { AccessListResult } from "./access-list.js";
import { formatSize } from "./options.js";
import { table } from "./report.js";
import type { ListResult, RetrieveResult } from "./scenario-metadata.js";
import type { SmallResult } from "./scenario-small.js";
import type { LargeTarget, TransferResult } from "./scenario-large.js";

const MiB = 1024 * 1024;
export const FULL_ROWS = 100_000;
const GiB = 1024 * MiB;

export interface LargeRatio {
  sizeBytes: number;
  target: LargeTarget;
  /** Against the faster direct upload (PutObject or multipart) and the direct GetObject. */
  uploadVsDirect: number | null;
  downloadVsDirect: number | null;
  uploadVsReference: number | null;
  downloadVsReference: number | null;
}

export interface SmallRatio {
  target: SmallResult["target"];
  concurrency: number;
  vsDirect: number | null;
  vsReference: number | null;
}

export interface LatencyRatio {
  scenario: "list" | "retrieve";
  target: string;
  /** Reference p99 ÷ this p99: how many times better. */
  p99TimesBetter: number | null;
  p50TimesBetter: number | null;
}

export interface Results {
  large: TransferResult[];
  small: SmallResult[];
  list: ListResult[];
  retrieve: RetrieveResult[];
  pg: PgResult | null;
  /** Listing under the access policy (bench/access-list.ts). */
  access?: AccessListResult | null;
  rows: number;
  /** Printed under the large-transfer table (e.g. sizes the reference refuses). */
  largeNotes: string[];
  /** --targets, so checks of unselected targets are left out rather than shown as n/a. */
  selected: string[];
}

const mb = (bytes: number | undefined) => (bytes === undefined ? "-" : (bytes / MiB).toFixed(1));

function ceiling(large: TransferResult[], size: number) {
  const direct = large.filter((r) => r.sizeBytes === size && (r.target === "direct-put" || r.target === "direct-multipart"));
  if (direct.length === 0) return undefined;
  return { upload: Math.max(...direct.map((r) => r.uploadMiBps)), download: Math.max(...direct.map((r) => r.downloadMiBps)) };
}

export function largeRatios(large: TransferResult[]): LargeRatio[] {
  return large
    .filter((r) => r.target !== "direct-put" && r.target !== "direct-multipart")
    .map((r) => {
      const c = ceiling(large, r.sizeBytes);
      const ref = r.target === "llama" ? undefined : large.find((x) => x.sizeBytes === r.sizeBytes && x.target === "llama");
      return {
        sizeBytes: r.sizeBytes,
        target: r.target,
        uploadVsDirect: div(r.uploadMiBps, c?.upload),
        downloadVsDirect: div(r.downloadMiBps, c?.download),
        uploadVsReference: div(r.uploadMiBps, ref?.uploadMiBps),
        downloadVsReference: div(r.downloadMiBps, ref?.downloadMiBps),
      };
    });
}

export function smallRatios(small: SmallResult[]): SmallRatio[] {
  return small
    .filter((r) => r.target !== "direct")
    .map((r) => {
      const direct = small.find((x) => x.target === "direct" && x.concurrency === r.concurrency);
      const ref = r.target === "llama" ? undefined : small.find((x) => x.target === "llama" && x.concurrency === r.concurrency);
      return { target: r.target, concurrency: r.concurrency, vsDirect: div(r.opsPerSecond, direct?.opsPerSecond), vsReference: div(r.opsPerSecond, ref?.opsPerSecond) };
    });
}

export function latencyRatios(list: ListResult[], retrieve: RetrieveResult[]): LatencyRatio[] {
  const out: LatencyRatio[] = [];
  const refList = list.find((r) => r.target === "llama");
  const refRetrieve = retrieve.find((r) => r.target === "llama");
  for (const r of list.filter((x) => x.target !== "llama")) {
    out.push({ scenario: "list", target: r.target, p99TimesBetter: div(refList?.pageLatency.p99Ms, r.pageLatency.p99Ms), p50TimesBetter: div(refList?.pageLatency.p50Ms, r.pageLatency.p50Ms) });
  }
  for (const r of retrieve.filter((x) => x.target !== "llama")) {
    out.push({ scenario: "retrieve", target: r.target, p99TimesBetter: div(refRetrieve?.latency.p99Ms, r.latency.p99Ms), p50TimesBetter: div(refRetrieve?.latency.p50Ms, r.latency.p50Ms) });
  }
  return out;
}

/**
 * The targets, each PASS/FAIL, or n/a when this run did not measure it; a check against
 * direct S3 or the reference only when that was selected (--storage local measures neither). Then
 * the gRPC-vs-REST checks (grpc-vs-rest.ts).
 */
export function targetChecks(results: Results): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const lr = largeRatios(results.large);
  const on = (t: string) => results.selected.includes(t);
  // Sizes the service or direct S3 ran at (not the reference-only size at its upload limit).
  const sizes = [...new Set(results.large.filter((r) => r.target !== "llama").map((r) => r.sizeBytes))].sort((a, b) => a - b);
  for (const size of on("direct") ? sizes : []) {
    for (const target of (["grpc", "grpcjs", "grpcgo", "rest", "resth2"] as const).filter(on)) {
      const r = lr.find((x) => x.sizeBytes === size && x.target === target);
      for (const op of ["upload", "download"] as const) {
        const v = r ? (op === "upload" ? r.uploadVsDirect : r.downloadVsDirect) : null;
        checks.push(check(`large ${op} ${formatSize(size)} over ${target}`, v, 0.9, `${fmt(v)}× direct S3`, "≥ 0.90× direct S3"));
      }
    }
  }

  const largest = sizes.at(-1);
  const smallest = sizes[0];
  for (const target of results.large.length > 0 ? (["grpc", "grpcjs", "grpcgo", "grpcio", "rest", "resth2", "uploads"] as const).filter(on) : []) {
    const at1G = results.large.find((r) => r.sizeBytes === GiB && r.target === target);
    if (at1G?.memory) {
      const growth = at1G.memory.growthBytes;
      checks.push({
        target: `RSS with a 1 GiB transfer over ${target}`,
        measured: `peak ${mb(at1G.memory.peakRssBytes)} MiB, idle ${mb(at1G.memory.idleRssBytes)} MiB: +${mb(growth)} MiB`,
        threshold: "≤ idle + 100 MiB",
        status: growth <= 100 * MiB ? "PASS" : "FAIL",
      });
    } else {
      const at = results.large.find((r) => r.sizeBytes === largest && r.target === target);
      checks.push({
        target: `RSS with a 1 GiB transfer over ${target}`,
        measured: at?.memory ? `1 GiB not run; at ${formatSize(at.sizeBytes)}: +${mb(at.memory.growthBytes)} MiB over idle` : "not measured",
        threshold: "≤ idle + 100 MiB",
        status: "n/a",
      });
    }
    const lo = results.large.find((r) => r.sizeBytes === smallest && r.target === target);
    const hi = results.large.find((r) => r.sizeBytes === largest && r.target === target);
    if (lo?.memory && hi?.memory && smallest !== largest) {
      const delta = hi.memory.peakRssBytes - lo.memory.peakRssBytes;
      checks.push({
        target: `RSS flat from ${formatSize(smallest!)} to ${formatSize(largest!)} over ${target}`,
        measured: `peak ${mb(lo.memory.peakRssBytes)} → ${mb(hi.memory.peakRssBytes)} MiB (${delta >= 0 ? "+" : ""}${mb(delta)})`,
        threshold: "within 100 MiB",
        status: Math.abs(delta) <= 100 * MiB ? "PASS" : "FAIL",
      });
    }
  }

  const sr = smallRatios(results.small);
  for (const target of results.small.length > 0 && on("llama") ? (["grpc", "grpcjs", "grpcgo", "rest"] as const).filter(on) : []) {
    const r = sr.find((x) => x.target === target && x.concurrency === 16);
    checks.push(check(`small files at concurrency 16 over ${target}`, r?.vsReference ?? null, 3, `${fmt(r?.vsReference)}× reference ops/s`, "≥ 3× reference ops/s"));
  }

  const rowsNote = results.rows === FULL_ROWS ? "" : ` (at ${results.rows} rows, target is at 100,000)`;
  for (const r of latencyRatios(results.list, results.retrieve)) {
    if (on("llama")) checks.push(check(`${r.scenario} p99 over ${r.target}${rowsNote}`, r.p99TimesBetter, 3, `${fmt(r.p99TimesBetter)}× better than reference`, "≥ 3× better p99"));
  }
  if (results.access) {
    const a = results.access;
    checks.push(atMost(`list p99 under llama_stack_default ÷ owner_only, in process (${a.inProcess.rows} rows)`, a.inProcess.p99_ratio, 1.5, `${fmt(a.inProcess.p99_ratio)}×`, "≤ 1.5×"));
    if (a.rest) checks.push(atMost(`list p99 under llama_stack_default ÷ owner_only, over REST (${a.inProcess.rows} rows)`, a.rest.p99_ratio, 1.5, `${fmt(a.rest.p99_ratio)}×`, "≤ 1.5×"));
  }
  checks.push(...grpcVsRestChecks(grpcVsRestOf(results), results, results.selected));
  checks.push(...libraryChecks(libraryVsStubs(results.large)));
  return checks;
}

export const grpcVsRestOf = (results: Results) => grpcVsRest(results.large, results.small, results.list, results.retrieve);


const LARGE_LABELS: Record<LargeTarget, string> = {
  "direct-put": "direct S3 PutObject",
  "direct-multipart": "direct S3 multipart",
  grpc: "service gRPC",
  grpcjs: "service gRPC (grpc-js)",
  grpcgo: "service gRPC (grpc-go)",
  grpcio: "service gRPC (grpcio)",
  rest: "service REST",
  resth2: "service REST (HTTP/2)",
  uploads: "service Uploads API",
  floor: "floor (bare node:http)",
  llama: "reference (llama-stack)",
  tslib: "TS client library",
  tslibstream: "TS client library (one stream)",
  golib: "Go client library",
  golibstream: "Go client library (one stream)",
  pylib: "Python client library",
  pylibstream: "Python client library (one stream)",
};

export function formatTables(results: Results): string {
  const out: string[] = [];
  if (results.large.length > 0) {
    const ratios = largeRatios(results.large);
    const rows = results.large.map((r) => {
      const ratio = ratios.find((x) => x.sizeBytes === r.sizeBytes && x.target === r.target);
      return [
        formatSize(r.sizeBytes),
        LARGE_LABELS[r.target],
        r.uploadMiBps.toFixed(1),
        fmt(ratio?.uploadVsDirect, 2, "×"),
        r.downloadMiBps.toFixed(1),
        fmt(ratio?.downloadVsDirect, 2, "×"),
        fmt(ratio?.uploadVsReference, 1, "×"),
        fmt(ratio?.downloadVsReference, 1, "×"),
        fmt(r.uploadCpuSecPerGiB),
        fmt(r.downloadCpuSecPerGiB),
        mb(r.memory?.idleRssBytes),
        mb(r.memory?.peakRssBytes),
        r.memory ? mb(r.memory.growthBytes) : "-",
      ];
    });
    out.push(
      "Large transfers (one at a time; best of runs; every download SHA-256 verified; server CPU (utime + stime) in s/GiB; RSS of the server process in MiB):",
      table(["size", "target", "up MiB/s", "up/direct", "down MiB/s", "down/direct", "up/ref", "down/ref", "up CPU s/GiB", "down CPU s/GiB", "idle RSS", "peak RSS", "peak-idle"], rows, 2),
      ...results.largeNotes.map((n) => `Note: ${n}`),
      "",
    );
  }
  if (results.small.length > 0) {
    const ratios = smallRatios(results.small);
    const rows = results.small.map((r) => {
      const ratio = ratios.find((x) => x.target === r.target && x.concurrency === r.concurrency);
      return [
        r.target === "llama" ? "reference" : r.target,
        String(r.concurrency),
        r.opsPerSecond.toFixed(0),
        r.latency.p50Ms.toFixed(1),
        r.latency.p99Ms.toFixed(1),
        fmt(ratio?.vsDirect, 2, "×"),
        fmt(ratio?.vsReference, 1, "×"),
        String(r.errors),
        fmt(r.cpuMsPerUpload, 3),
        mb(r.memory?.idleRssBytes),
        mb(r.memory?.peakRssBytes),
      ];
    });
    out.push(
      "Small files (4 KiB uploads, closed loop; server CPU per successful upload):",
      table(["target", "conc.", "ops/s", "p50 ms", "p99 ms", "/direct", "/ref", "errors", "CPU ms/upload", "idle RSS", "peak RSS"], rows),
      "",
    );
  }
  const lat = latencyRatios(results.list, results.retrieve);
  if (results.list.length > 0) {
    const rows = results.list.map((r) => {
      const ratio = lat.find((x) => x.scenario === "list" && x.target === r.target);
      return [
        r.target === "llama" ? "reference" : r.target,
        `${r.rowsSeen}/${r.rows}${r.complete ? "" : " (!)"}`,
        String(r.pages),
        r.seconds.toFixed(1),
        r.rowsPerSecond.toFixed(0),
        r.pageLatency.p50Ms.toFixed(2),
        r.pageLatency.p99Ms.toFixed(2),
        fmt(ratio?.p99TimesBetter, 1, "×"),
        fmt(r.cpuMicrosPerCall, 0),
        mb(r.memory.idleRssBytes),
        mb(r.memory.peakRssBytes),
      ];
    });
    out.push(
      `List (walk of GET /v1/files?limit=100 across ${results.rows} rows; p99 ratio = reference p99 / this p99; server CPU per page):`,
      table(["target", "rows seen", "pages", "walk s", "rows/s", "page p50 ms", "page p99 ms", "p99 better", "CPU µs/page", "idle RSS", "peak RSS"], rows),
      "",
    );
  }
  if (results.retrieve.length > 0) {
    const rows = results.retrieve.map((r) => {
      const ratio = lat.find((x) => x.scenario === "retrieve" && x.target === r.target);
      return [
        r.target === "llama" ? "reference" : r.target,
        String(r.ops),
        r.opsPerSecond.toFixed(0),
        r.latency.p50Ms.toFixed(2),
        r.latency.p99Ms.toFixed(2),
        fmt(ratio?.p99TimesBetter, 1, "×"),
        fmt(r.cpuMicrosPerCall, 0),
        mb(r.memory.idleRssBytes),
        mb(r.memory.peakRssBytes),
      ];
    });
    out.push(
      `Retrieve by id (sequential, random ids, ${results.rows} rows; server CPU per request):`,
      table(["target", "requests", "ops/s", "p50 ms", "p99 ms", "p99 better", "CPU µs/call", "idle RSS", "peak RSS"], rows),
      "",
    );
  }
  if (results.pg) {
    const rows = results.pg.rates.map((r) => [r.what, String(r.concurrency), String(r.ops), r.opsPerSecond.toFixed(0), r.rowsPerSecond.toFixed(0), r.latency.p50Ms.toFixed(2), r.latency.p99Ms.toFixed(2)]);
    out.push(`PostgreSQL metadata through the repository (${results.pg.rows} rows; ${results.pg.server}):`, table(["operation", "conc.", "ops", "ops/s", "rows/s", "p50 ms", "p99 ms"], rows), "");
  }
  if (results.access) {
    const { inProcess, rest } = results.access;
    const row = (over: string, name: "owner_only" | "llama_stack_default", p: { p50_ms: number; p99_ms: number }, cpu: number) =>
      [over, name, p.p50_ms.toFixed(2), p.p99_ms.toFixed(2), cpu.toFixed(2)];
    const rows = [
      row("in process", "owner_only", inProcess.owner_only, inProcess.owner_only.cpu_ms_per_page),
      row("in process", "llama_stack_default", inProcess.llama_stack_default, inProcess.llama_stack_default.cpu_ms_per_page),
      ...(rest
        ? [row("REST", "owner_only", rest.owner_only, rest.owner_only.server_cpu_ms_per_page), row("REST", "llama_stack_default", rest.llama_stack_default, rest.llama_stack_default.server_cpu_ms_per_page)]
        : []),
    ];
    out.push(
      `Listing under the access policy (${inProcess.rows} rows, half with owner attributes; pages of 100; CPU ms per page, the server's over REST):`,
      table(["over", "policy", "p50 ms", "p99 ms", "CPU ms/page"], rows),
      "",
    );
  }
  const versus = formatGrpcVsRest(grpcVsRestOf(results));
  if (versus) out.push(versus);
  const libraries = formatLibraryVsStubs(libraryVsStubs(results.large));
  if (libraries) out.push(libraries);
  const checks = targetChecks(results);
  if (checks.length > 0) {
    out.push("Targets (issue #7):", table(["target", "measured", "threshold", "status"], checks.map((c) => [c.target, c.measured, c.threshold, c.status]), 4).replace(/ +$/gm, ""));
  }
  return out.join("\n");
}
