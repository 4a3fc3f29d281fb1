import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import { formatBytes } from "../client-kit/byte-units.js";
import { PURPOSES, purposeNameOf } from "../client-kit/purpose-names.js";

/** "" (every purpose) and unknown names map to UNSPECIFIED, which the server reads as "no filter". */
export function purposeFromName(name: string): FilePurpose {
  return PURPOSES.get(name) ?? FilePurpose.UNSPECIFIED;
}

export function purposeName(purpose: FilePurpose): string {
  return purposeNameOf(purpose) ?? "unknown";
}

export { formatBytes };

export function formatRate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(Math.round(bytes / seconds))}/s` : "";
}

/** Percent of `done` out of `total`, whole numbers, 100 only when everything is done. */
export function percent(done: number, total: number): number {
  if (total <= 0) return 100;
  return done >= total ? 100 : Math.min(99, Math.floor((done / total) * 100));
}

/** Unix seconds as the reader's local date and time. */
export function formatTime(unixSeconds: bigint): string {
  return new Date(Number(unixSeconds) * 1000).toLocaleString();
}
