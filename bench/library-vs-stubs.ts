/**
 * The client libraries against hand-written use of the generated stubs in the same language (the
 * library's upload and download MiB/s ÷ the stubs' at each size), their parallel-parts path
 * against their own one-stream path, and each library client's own RSS growth; then the checks of
 * issue #17 at the largest size measured.
 */
import { atMost, check, div, fmt, type TargetCheck } from "./checks.js";
import { formatSize } from "./options.js";
import { table } from "./report.js";
import type { TransferResult } from "./scenario-large.js";

/** Each library's targets: its defaults, its one-stream variant, and the same language's stubs. */
export const LIBRARIES = [
  { language: "TypeScript", library: "tslib", stream: "tslibstream", stubs: "grpc" },
  { language: "Go", library: "golib", stream: "golibstream", stubs: "grpcgo" },
  { language: "Python", library: "pylib", stream: "pylibstream", stubs: "grpcio" },
] as const;

export interface LibraryRow {
  language: string;
  sizeBytes: number;
  uploadVsStubs: number | null;
  downloadVsStubs: number | null;
  /** Parallel parts ÷ one stream, uploads. */
  partsVsStream: number | null;
  clientGrowthBytes: number | null;
}

export function libraryVsStubs(large: TransferResult[]): LibraryRow[] {
  const rows: LibraryRow[] = [];
  for (const lib of LIBRARIES) {
    for (const r of large.filter((x) => x.target === lib.library)) {
      const at = (target: string) => large.find((x) => x.target === target && x.sizeBytes === r.sizeBytes);
      rows.push({
        language: lib.language,
        sizeBytes: r.sizeBytes,
        uploadVsStubs: div(r.uploadMiBps, at(lib.stubs)?.uploadMiBps),
        downloadVsStubs: div(r.downloadMiBps, at(lib.stubs)?.downloadMiBps),
        partsVsStream: div(r.uploadMiBps, at(lib.stream)?.uploadMiBps),
        clientGrowthBytes: r.clientMemory?.growthBytes ?? null,
      });
    }
  }
  return rows;
}

/** At the largest size: upload ≥ 0.9× the stubs, parts ≥ 1.3× one stream, client RSS growth < 100 MiB. */
export function libraryChecks(rows: LibraryRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const lib of LIBRARIES) {
    const mine = rows.filter((r) => r.language === lib.language);
    if (mine.length === 0) continue;
    const r = mine.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
    const s = formatSize(r.sizeBytes);
    checks.push(
      check(`${lib.language} library upload ${s} vs its stubs (${lib.stubs})`, r.uploadVsStubs, 0.9, `${fmt(r.uploadVsStubs)}×`, "≥ 0.9×"),
      check(`${lib.language} library upload ${s}: parallel parts vs one stream`, r.partsVsStream, 1.3, `${fmt(r.partsVsStream)}×`, "≥ 1.3×"),
      atMost(`${lib.language} library client RSS growth, ${s}`, r.clientGrowthBytes === null ? null : r.clientGrowthBytes / 2 ** 20, 100, `+${fmt(r.clientGrowthBytes === null ? null : r.clientGrowthBytes / 2 ** 20, 1)} MiB`, "< 100 MiB"),
    );
  }
  return checks;
}

export function formatLibraryVsStubs(rows: LibraryRow[]): string {
  if (rows.length === 0) return "";
  const body = rows.map((r) => [r.language, formatSize(r.sizeBytes), fmt(r.uploadVsStubs, 2, "×"), fmt(r.downloadVsStubs, 2, "×"), fmt(r.partsVsStream, 2, "×"), r.clientGrowthBytes === null ? "-" : `+${fmt(r.clientGrowthBytes / 2 ** 20, 1)}`]);
  return [
    "Client libraries vs the same language's stubs (MiB/s ÷ the stubs'; uploads in parallel parts ÷ one stream; the library client's RSS growth in MiB):",
    table(["library", "size", "up/stubs", "down/stubs", "parts/stream", "client RSS"], body, 2),
    "",
  ].join("\n");
}
