import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";

/** OpenAI's purpose names, as the page's selects carry them, and their enum values. */
const PURPOSES: ReadonlyArray<readonly [string, FilePurpose]> = [
  ["assistants", FilePurpose.ASSISTANTS],
  ["assistants_output", FilePurpose.ASSISTANTS_OUTPUT],
  ["batch", FilePurpose.BATCH],
  ["batch_output", FilePurpose.BATCH_OUTPUT],
  ["fine-tune", FilePurpose.FINE_TUNE],
  ["fine-tune-results", FilePurpose.FINE_TUNE_RESULTS],
  ["vision", FilePurpose.VISION],
  ["user_data", FilePurpose.USER_DATA],
  ["evals", FilePurpose.EVALS],
];

/** "" (every purpose) and unknown names map to UNSPECIFIED, which the server reads as "no filter". */
export function purposeFromName(name: string): FilePurpose {
  return PURPOSES.find(([n]) => n === name)?.[1] ?? FilePurpose.UNSPECIFIED;
}

export function purposeName(purpose: FilePurpose): string {
  return PURPOSES.find(([, p]) => p === purpose)?.[0] ?? "unknown";
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number | bigint): string {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

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
