/** Result types, summaries and the printed table of the upload/download benchmark; the plain-text table the bench prints. */
import { MiB } from "./payload.js";

export type Operation = "upload" | "download";
export type Path = "direct" | "connect" | "rest" | "grpcJs" | "connectIdentity";

export const PATH_LABELS: Record<Path, string> = {
  direct: "direct S3",
  connect: "service (connect-node gRPC)",
  rest: "service (REST multipart)",
  grpcJs: "service (@grpc/grpc-js)",
  connectIdentity: "service (connect-node, no compression)",
};

/** One timed transfer. */
export interface Sample {
  run: number;
  path: Path;
  operation: Operation;
  bytes: number;
  seconds: number;
  mibPerSecond: number;
  /** Download only: the messages (service) or body chunks (S3) the bytes arrived in. */
  chunks: number | null;
  /** CPU used during the transfer, as a share of one core (1 = one core busy the whole time). */
  cores: { client: number; server: number; s3: number | null };
  /** Largest server VmRSS sampled during the transfer (service paths only). */
  serverPeakRssBytes: number | null;
  /** Service paths: the server's VmRSS over the transfer, as [ms since start, MiB]. */
  serverRssTimeline: [number, number][] | null;
}

export interface Summary {
  path: Path;
  operation: Operation;
  bestMibPerSecond: number;
  medianMibPerSecond: number;
  /** Service ÷ direct, both best-of-runs; null for the direct path itself. */
  ratio: number | null;
  /** Mean CPU shares over the runs. */
  cores: { client: number; server: number; s3: number | null };
  serverPeakRssBytes: number | null;
}

export interface MemoryReport {
  pid: number;
  idleRssBytes: number;
  afterWarmupRssBytes: number;
  peakRssBytes: number;
  growthBytes: number;
  endRssBytes: number;
  samples: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

export function summarize(samples: Sample[]): Summary[] {
  const out: Summary[] = [];
  const best = (path: Path, operation: Operation) =>
    Math.max(...samples.filter((s) => s.path === path && s.operation === operation).map((s) => s.mibPerSecond));
  for (const operation of ["upload", "download"] as const) {
    for (const path of ["direct", "connect", "rest", "grpcJs", "connectIdentity"] as const) {
      const mine = samples.filter((s) => s.path === path && s.operation === operation);
      if (mine.length === 0) continue;
      const bestMibPerSecond = best(path, operation);
      const s3 = mine.map((s) => s.cores.s3).filter((c): c is number => c !== null);
      const rss = mine.map((s) => s.serverPeakRssBytes).filter((r): r is number => r !== null);
      out.push({
        path,
        operation,
        bestMibPerSecond,
        medianMibPerSecond: median(mine.map((s) => s.mibPerSecond)),
        ratio: path === "direct" ? null : bestMibPerSecond / best("direct", operation),
        cores: {
          client: mean(mine.map((s) => s.cores.client)),
          server: mean(mine.map((s) => s.cores.server)),
          s3: s3.length ? mean(s3) : null,
        },
        serverPeakRssBytes: rss.length ? Math.max(...rss) : null,
      });
    }
  }
  return out;
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/** A plain-text table: the first `textColumns` columns left-aligned, the rest (numbers) right-aligned. */
export function table(header: string[], rows: string[][], textColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < textColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** The human-readable report: throughput table, CPU shares, then server memory. */
export function formatReport(summaries: Summary[], memory: MemoryReport, runs: number): string {
  const paths = [...new Set(summaries.map((s) => s.path))].filter((p) => p !== "direct");
  const find = (path: Path, op: Operation) => summaries.find((s) => s.path === path && s.operation === op);
  const header = ["operation", "direct S3 MiB/s"];
  for (const p of paths) header.push(`${PATH_LABELS[p]} MiB/s`, "ratio");
  const rows = (["upload", "download"] as const).map((op) => {
    const row = [op, find("direct", op)!.bestMibPerSecond.toFixed(1)];
    for (const p of paths) {
      const s = find(p, op)!;
      row.push(s.bestMibPerSecond.toFixed(1), `${s.ratio!.toFixed(2)}x`);
    }
    return row;
  });

  const cpuRows = summaries.map((s) => [
    `${s.operation} / ${PATH_LABELS[s.path]}`,
    s.medianMibPerSecond.toFixed(1),
    s.cores.client.toFixed(2),
    s.path === "direct" ? "-" : s.cores.server.toFixed(2),
    s.cores.s3 === null ? "n/a" : s.cores.s3.toFixed(2),
    s.serverPeakRssBytes === null ? "-" : mib(s.serverPeakRssBytes),
  ]);

  return [
    `Throughput (best of ${runs} run${runs === 1 ? "" : "s"}; ratio = service / direct):`,
    table(header, rows),
    "",
    "Per path (median MiB/s; CPU in cores, mean over runs; 2-core machine):",
    table(["operation / path", "median MiB/s", "client CPU", "server CPU", "S3 CPU", "server RSS peak MiB"], cpuRows),
    "",
    `Server memory (pid ${memory.pid}, VmRSS sampled every 100 ms, ${memory.samples} samples; peak = VmHWM):`,
    table(
      ["idle RSS MiB", "after warm-up MiB", "peak RSS MiB", "growth MiB", "at end MiB"],
      [[mib(memory.idleRssBytes), mib(memory.afterWarmupRssBytes), mib(memory.peakRssBytes), mib(memory.growthBytes), mib(memory.endRssBytes)]],
    ),
  ].join("\n");
}
