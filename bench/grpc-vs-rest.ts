/**
 * What gRPC costs against REST, from one run's figures: for each size, each gRPC target's (and
 * REST over HTTP/2's) throughput and server CPU per GiB as multiples of REST's (HTTP/1.1), and
 * every service path's server CPU per GiB as a multiple of the floor's (a bare node:http server on
 * the same store); the server CPU per GetFile / ListFiles call as a multiple of REST's per
 * retrieve / list page; small uploads against REST and the reference. Then the checks of the
 * gRPC transport work. Only figures of the same run are compared.
 */
import { atMost, check, div, fmt, type TargetCheck } from "./checks.js";
import { formatSize } from "./options.js";
import { table } from "./report.js";
import type { TransferResult } from "./scenario-large.js";
import type { ListResult, RetrieveResult } from "./scenario-metadata.js";
import type { SmallResult } from "./scenario-small.js";

/** The paths compared with REST over HTTP/1.1. */
export const VERSUS_REST = ["grpc", "grpcjs", "grpcgo", "grpcio", "resth2"] as const;
type Versus = (typeof VERSUS_REST)[number];

export interface LargeVsRest {
  sizeBytes: number;
  target: Versus | "rest";
  /** Throughput ÷ REST's; null for REST itself. */
  uploadVsRest: number | null;
  downloadVsRest: number | null;
  /** Server CPU per GiB ÷ REST's; null for REST itself. */
  uploadCpuVsRest: number | null;
  downloadCpuVsRest: number | null;
  /** Server CPU per GiB ÷ the floor's. */
  uploadCpuVsFloor: number | null;
  downloadCpuVsFloor: number | null;
}

export interface PerCallVsRest {
  /** GetFile against GET /v1/files/{id}; ListFiles against a GET /v1/files page. */
  scenario: "retrieve" | "list";
  target: Versus;
  cpuMicrosPerCall: number;
  restCpuMicrosPerCall: number | null;
  cpuVsRest: number | null;
}

export interface SmallVsRest {
  target: Versus;
  concurrency: number;
  opsVsRest: number | null;
  cpuPerUploadVsRest: number | null;
  opsVsReference: number | null;
}

export interface GrpcVsRest {
  large: LargeVsRest[];
  perCall: PerCallVsRest[];
  small: SmallVsRest[];
}

const isVersus = (t: string): t is Versus => (VERSUS_REST as readonly string[]).includes(t);

export function grpcVsRest(large: TransferResult[], small: SmallResult[], list: ListResult[], retrieve: RetrieveResult[]): GrpcVsRest {
  const at = (target: string, size: number) => large.find((r) => r.target === target && r.sizeBytes === size);
  const largeRows: LargeVsRest[] = [];
  for (const r of large) {
    if (r.target !== "rest" && !isVersus(r.target)) continue;
    const rest = r.target === "rest" ? undefined : at("rest", r.sizeBytes);
    const floor = at("floor", r.sizeBytes);
    largeRows.push({
      sizeBytes: r.sizeBytes,
      target: r.target,
      uploadVsRest: div(r.uploadMiBps, rest?.uploadMiBps),
      downloadVsRest: div(r.downloadMiBps, rest?.downloadMiBps),
      uploadCpuVsRest: div(r.uploadCpuSecPerGiB, rest?.uploadCpuSecPerGiB),
      downloadCpuVsRest: div(r.downloadCpuSecPerGiB, rest?.downloadCpuSecPerGiB),
      uploadCpuVsFloor: div(r.uploadCpuSecPerGiB, floor?.uploadCpuSecPerGiB),
      downloadCpuVsFloor: div(r.downloadCpuSecPerGiB, floor?.downloadCpuSecPerGiB),
    });
  }
  const perCall: PerCallVsRest[] = [];
  for (const [scenario, results] of [["retrieve", retrieve], ["list", list]] as const) {
    const rest = results.find((r) => r.target === "rest")?.cpuMicrosPerCall ?? null;
    for (const r of results) {
      if (isVersus(r.target)) perCall.push({ scenario, target: r.target, cpuMicrosPerCall: r.cpuMicrosPerCall, restCpuMicrosPerCall: rest, cpuVsRest: div(r.cpuMicrosPerCall, rest) });
    }
  }
  const smallRows: SmallVsRest[] = [];
  for (const r of small) {
    if (!isVersus(r.target)) continue;
    const level = (target: string) => small.find((x) => x.target === target && x.concurrency === r.concurrency);
    smallRows.push({
      target: r.target,
      concurrency: r.concurrency,
      opsVsRest: div(r.opsPerSecond, level("rest")?.opsPerSecond),
      cpuPerUploadVsRest: div(r.cpuMsPerUpload, level("rest")?.cpuMsPerUpload),
      opsVsReference: div(r.opsPerSecond, level("llama")?.opsPerSecond),
    });
  }
  return { large: largeRows, perCall, small: smallRows };
}

/**
 * The checks of the gRPC transport work, each where both of its sides were selected: grpc-go
 * (the client least likely to be the bottleneck) at ≥ 0.95× REST's throughput and ≤ 1.25× / 1.15×
 * its server CPU per GiB up / down; REST and grpc-go downloads at ≤ 1.5× the floor's CPU per GiB;
 * GetFile and ListFiles at ≤ 1.3× REST's server CPU per call (grpc-go and connect-node).
 */
export function grpcVsRestChecks(ratios: GrpcVsRest, measured: { large: TransferResult[]; list: ListResult[]; retrieve: RetrieveResult[] }, selected: readonly string[]): TargetCheck[] {
  const on = (...targets: string[]) => targets.every((t) => selected.includes(t));
  const checks: TargetCheck[] = [];
  const sizes = [...new Set(measured.large.filter((r) => r.target !== "llama").map((r) => r.sizeBytes))].sort((a, b) => a - b);
  for (const size of sizes) {
    const s = formatSize(size);
    const row = (target: string) => ratios.large.find((r) => r.target === target && r.sizeBytes === size);
    if (on("grpcgo", "rest")) {
      const go = row("grpcgo");
      checks.push(
        check(`large upload ${s}: grpcgo vs REST throughput`, go?.uploadVsRest ?? null, 0.95, `${fmt(go?.uploadVsRest)}× REST`, "≥ 0.95× REST"),
        check(`large download ${s}: grpcgo vs REST throughput`, go?.downloadVsRest ?? null, 0.95, `${fmt(go?.downloadVsRest)}× REST`, "≥ 0.95× REST"),
        atMost(`large upload ${s}: grpcgo vs REST server CPU/GiB`, go?.uploadCpuVsRest ?? null, 1.25, `${fmt(go?.uploadCpuVsRest)}× REST`, "≤ 1.25× REST"),
        atMost(`large download ${s}: grpcgo vs REST server CPU/GiB`, go?.downloadCpuVsRest ?? null, 1.15, `${fmt(go?.downloadCpuVsRest)}× REST`, "≤ 1.15× REST"),
      );
    }
    for (const target of ["rest", "grpcgo"].filter((t) => on(t, "floor"))) {
      const r = row(target);
      checks.push(atMost(`large download ${s}: ${target} vs floor server CPU/GiB`, r?.downloadCpuVsFloor ?? null, 1.5, `${fmt(r?.downloadCpuVsFloor)}× floor`, "≤ 1.5× floor"));
    }
  }
  for (const scenario of (["retrieve", "list"] as const).filter((s) => measured[s].length > 0)) {
    const rpc = scenario === "retrieve" ? "GetFile" : "ListFiles";
    for (const target of ["grpc", "grpcgo"].filter((t) => on(t, "rest"))) {
      const r = ratios.perCall.find((x) => x.scenario === scenario && x.target === target);
      checks.push(atMost(`${rpc} server CPU/call over ${target} vs REST`, r?.cpuVsRest ?? null, 1.3, `${fmt(r?.cpuMicrosPerCall, 0)} µs, ${fmt(r?.cpuVsRest)}× REST`, "≤ 1.3× REST"));
    }
  }
  return checks;
}

export function formatGrpcVsRest(ratios: GrpcVsRest): string {
  const out: string[] = [];
  if (ratios.large.length > 0) {
    const rows = ratios.large.map((r) => [
      formatSize(r.sizeBytes),
      r.target,
      fmt(r.uploadVsRest, 2, "×"),
      fmt(r.downloadVsRest, 2, "×"),
      fmt(r.uploadCpuVsRest, 2, "×"),
      fmt(r.downloadCpuVsRest, 2, "×"),
      fmt(r.uploadCpuVsFloor, 2, "×"),
      fmt(r.downloadCpuVsFloor, 2, "×"),
    ]);
    out.push(
      "gRPC vs REST, large transfers (throughput and server CPU per GiB, ÷ REST over HTTP/1.1 and ÷ the floor):",
      table(["size", "target", "up/REST", "down/REST", "up CPU/REST", "down CPU/REST", "up CPU/floor", "down CPU/floor"], rows, 2),
      "",
    );
  }
  if (ratios.perCall.length > 0) {
    const rows = ratios.perCall.map((r) => [r.scenario === "retrieve" ? "GetFile / GET /v1/files/{id}" : "ListFiles / GET /v1/files page", r.target, fmt(r.cpuMicrosPerCall, 0), fmt(r.restCpuMicrosPerCall, 0), fmt(r.cpuVsRest, 2, "×")]);
    out.push("gRPC vs REST, server CPU per call:", table(["call", "target", "CPU µs/call", "REST µs/call", "÷ REST"], rows, 2), "");
  }
  if (ratios.small.length > 0) {
    const rows = ratios.small.map((r) => [r.target, String(r.concurrency), fmt(r.opsVsRest, 2, "×"), fmt(r.cpuPerUploadVsRest, 2, "×"), fmt(r.opsVsReference, 1, "×")]);
    out.push("gRPC vs REST, small uploads (ops/s and server CPU per upload ÷ REST's; ops/s ÷ the reference's):", table(["target", "conc.", "ops/REST", "CPU/REST", "ops/ref"], rows), "");
  }
  return out.join("\n");
}
