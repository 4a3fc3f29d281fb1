/** Single-range `Range` header handling per RFC 9110 §14. */
export type RangeResult =
  | { kind: "none" } // no Range header, or one we ignore: send the whole file (200)
  | { kind: "range"; offset: number; length: number } // 206 with Content-Range
  | { kind: "unsatisfiable" }; // 416 with Content-Range: bytes */size

const NONE: RangeResult = { kind: "none" };
const UNSATISFIABLE: RangeResult = { kind: "unsatisfiable" };

// One range-spec only: multiple ranges are legal but we choose to serve the full representation.
const RANGE_RE = /^[ \t]*bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*$/i;

export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return NONE;
  const match = RANGE_RE.exec(header);
  if (!match) return NONE;
  const [, firstText = "", lastText = ""] = match;
  const first = toInt(firstText);
  const last = toInt(lastText);
  // Unparseable or oversized numbers are a syntax error, and RFC 9110 says to ignore the header.
  if (first === null || last === null) return NONE;

  if (first === undefined) {
    if (last === undefined) return NONE; // "-" alone
    // Suffix range: the last `last` bytes, clipped to the whole file.
    if (last === 0 || size === 0) return UNSATISFIABLE;
    const length = Math.min(last, size);
    return { kind: "range", offset: size - length, length };
  }

  if (last !== undefined && last < first) return NONE;
  if (first >= size) return UNSATISFIABLE;
  const end = last === undefined ? size - 1 : Math.min(last, size - 1);
  return { kind: "range", offset: first, length: end - first + 1 };
}

/** `Content-Range` value for a 206 response. */
export function contentRange(offset: number, length: number, size: number): string {
  return `bytes ${offset}-${offset + length - 1}/${size}`;
}

/** undefined for an empty field, null for a value we can't represent exactly. */
function toInt(text: string): number | undefined | null {
  if (text === "") return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}
