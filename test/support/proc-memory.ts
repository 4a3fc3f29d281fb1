import { readFileSync } from "node:fs";

/** A process's VmRSS (resident now) or VmHWM (peak resident), in bytes, from /proc. */
export function processMemory(pid: number, field: "VmRSS" | "VmHWM"): number {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${field}:\\s+(\\d+) kB`));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
