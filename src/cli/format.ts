import { FilePurpose, FileStatus, type File } from "../../gen/ts/files/v1/files_pb.js";
import { formatBytes } from "../client-kit/byte-units.js";
import { PURPOSES, purposeNameOf } from "../client-kit/purpose-names.js";

export { PURPOSES };

export function purposeName(purpose: FilePurpose): string {
  return purposeNameOf(purpose) ?? (purpose === FilePurpose.UNSPECIFIED ? "" : `unknown(${purpose})`);
}

const STATUS_NAMES: Record<FileStatus, string> = {
  [FileStatus.UNSPECIFIED]: "",
  [FileStatus.UPLOADED]: "uploaded",
  [FileStatus.PROCESSED]: "processed",
  [FileStatus.ERROR]: "error",
};

export interface FileJson {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: string;
  status: string;
  sha256: string;
  mime_type: string;
}

/** The file as the REST API shows it (snake_case, null without expiry), plus sha256 and mime_type. */
export function fileJson(file: File): FileJson {
  return {
    id: file.id,
    object: "file",
    bytes: Number(file.bytes),
    created_at: Number(file.createdAt),
    expires_at: file.expiresAt === undefined ? null : Number(file.expiresAt),
    filename: file.filename,
    purpose: purposeName(file.purpose),
    status: STATUS_NAMES[file.status] ?? String(file.status),
    sha256: file.sha256,
    mime_type: file.mimeType,
  };
}

export { formatBytes };

/** Unix seconds → "2025-01-31 12:34:56 UTC". */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Control characters (a newline or an escape sequence in a filename) shown escaped, so a name cannot garble the terminal. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** `key: value` lines with the values aligned. */
export function keyValueLines(file: File): string {
  const json = fileJson(file);
  const rows: [string, string][] = [
    ["id", json.id],
    ["filename", printable(json.filename)],
    ["bytes", `${json.bytes} (${formatBytes(json.bytes)})`],
    ["purpose", json.purpose],
    ["status", json.status],
    ["created_at", formatTime(json.created_at)],
    ["expires_at", json.expires_at === null ? "never" : formatTime(json.expires_at)],
    ["mime_type", printable(json.mime_type)],
    ["sha256", json.sha256 || "-"],
  ];
  const width = Math.max(...rows.map(([key]) => key.length)) + 1;
  return rows.map(([key, value]) => `${`${key}:`.padEnd(width)} ${value}\n`).join("");
}

/** An aligned table with a header row; the last column is left unpadded. */
export function table(header: string[], rows: string[][], rightAligned: ReadonlySet<number> = new Set()): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, col) => {
          if (col === row.length - 1 && !rightAligned.has(col)) return cell;
          return rightAligned.has(col) ? cell.padStart(widths[col]!) : cell.padEnd(widths[col]!);
        })
        .join("  ")
        .concat("\n"),
    )
    .join("");
}

export function fileTable(files: File[]): string {
  const rows = files.map((f) => {
    const json = fileJson(f);
    return [json.id, formatBytes(json.bytes), formatTime(json.created_at), json.purpose, printable(json.filename)];
  });
  return table(["ID", "SIZE", "CREATED", "PURPOSE", "FILENAME"], rows, new Set([1]));
}
