/**
 * What TLS costs (--tls): each path measured on the service's TLS port against the same path in
 * plaintext, measured in the same run right before it. Large transfers: throughput and server CPU
 * per GiB as multiples of plaintext's, and the CPU TLS adds per GiB in seconds; small uploads:
 * ops/s and server CPU per upload as multiples of plaintext's.
 */
import { div, fmt } from "./checks.js";
import { formatSize } from "./options.js";
import { table } from "./report.js";
import type { TransferResult } from "./scenario-large.js";
import type { SmallResult } from "./scenario-small.js";

export interface LargeTlsRow {
  sizeBytes: number;
  target: string;
  uploadMiBps: number;
  downloadMiBps: number;
  /** TLS ÷ plaintext. */
  uploadVsPlain: number | null;
  downloadVsPlain: number | null;
  uploadCpuSecPerGiB: number | null;
  downloadCpuSecPerGiB: number | null;
  uploadCpuVsPlain: number | null;
  downloadCpuVsPlain: number | null;
  /** Server CPU seconds per GiB that TLS adds (TLS − plaintext). */
  uploadCpuAddedSecPerGiB: number | null;
  downloadCpuAddedSecPerGiB: number | null;
}

export interface SmallTlsRow {
  target: string;
  concurrency: number;
  opsPerSecond: number;
  opsVsPlain: number | null;
  cpuMsPerUpload: number | null;
  cpuPerUploadVsPlain: number | null;
}

export interface TlsVsPlaintext {
  large: LargeTlsRow[];
  small: SmallTlsRow[];
}

const minus = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined || b === null || b === undefined ? null : a - b);

export function tlsVsPlaintext(plain: { large: TransferResult[]; small: SmallResult[] }, tls: { large: TransferResult[]; small: SmallResult[] }): TlsVsPlaintext {
  const large = tls.large.map((t): LargeTlsRow => {
    const p = plain.large.find((r) => r.target === t.target && r.sizeBytes === t.sizeBytes);
    return {
      sizeBytes: t.sizeBytes,
      target: t.target,
      uploadMiBps: t.uploadMiBps,
      downloadMiBps: t.downloadMiBps,
      uploadVsPlain: div(t.uploadMiBps, p?.uploadMiBps),
      downloadVsPlain: div(t.downloadMiBps, p?.downloadMiBps),
      uploadCpuSecPerGiB: t.uploadCpuSecPerGiB,
      downloadCpuSecPerGiB: t.downloadCpuSecPerGiB,
      uploadCpuVsPlain: div(t.uploadCpuSecPerGiB, p?.uploadCpuSecPerGiB),
      downloadCpuVsPlain: div(t.downloadCpuSecPerGiB, p?.downloadCpuSecPerGiB),
      uploadCpuAddedSecPerGiB: minus(t.uploadCpuSecPerGiB, p?.uploadCpuSecPerGiB),
      downloadCpuAddedSecPerGiB: minus(t.downloadCpuSecPerGiB, p?.downloadCpuSecPerGiB),
    };
  });
  const small = tls.small.map((t): SmallTlsRow => {
    const p = plain.small.find((r) => r.target === t.target && r.concurrency === t.concurrency);
    return {
      target: t.target,
      concurrency: t.concurrency,
      opsPerSecond: t.opsPerSecond,
      opsVsPlain: div(t.opsPerSecond, p?.opsPerSecond),
      cpuMsPerUpload: t.cpuMsPerUpload,
      cpuPerUploadVsPlain: div(t.cpuMsPerUpload, p?.cpuMsPerUpload),
    };
  });
  return { large, small };
}

export function formatTlsVsPlaintext(ratios: TlsVsPlaintext): string {
  const out: string[] = [];
  if (ratios.large.length > 0) {
    const rows = ratios.large.map((r) => [
      formatSize(r.sizeBytes),
      r.target,
      fmt(r.uploadMiBps, 1),
      fmt(r.uploadVsPlain, 2, "×"),
      fmt(r.downloadMiBps, 1),
      fmt(r.downloadVsPlain, 2, "×"),
      fmt(r.uploadCpuSecPerGiB),
      fmt(r.uploadCpuVsPlain, 2, "×"),
      fmt(r.uploadCpuAddedSecPerGiB, 2, " s"),
      fmt(r.downloadCpuSecPerGiB),
      fmt(r.downloadCpuVsPlain, 2, "×"),
      fmt(r.downloadCpuAddedSecPerGiB, 2, " s"),
    ]);
    out.push(
      "TLS vs plaintext, large transfers (MiB/s and server CPU s/GiB over TLS; ÷ the same path in plaintext, this run; + CPU s/GiB TLS adds):",
      table(["size", "target", "up MiB/s", "÷ plain", "down MiB/s", "÷ plain", "up CPU", "÷ plain", "+ up", "down CPU", "÷ plain", "+ down"], rows, 2),
      "",
    );
  }
  if (ratios.small.length > 0) {
    const rows = ratios.small.map((r) => [r.target, String(r.concurrency), fmt(r.opsPerSecond, 0), fmt(r.opsVsPlain, 2, "×"), fmt(r.cpuMsPerUpload), fmt(r.cpuPerUploadVsPlain, 2, "×")]);
    out.push("TLS vs plaintext, small uploads (over TLS; ÷ the same path in plaintext, this run):", table(["target", "conc.", "ops/s", "÷ plain", "CPU ms/upload", "÷ plain"], rows, 2), "");
  }
  return out.join("\n");
}
