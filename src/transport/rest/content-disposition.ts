/**
 * Builds a `Content-Disposition: attachment` header value (RFC 6266) with an
 * ASCII `filename` fallback and a UTF-8 `filename*` (RFC 8187).
 */
export function contentDisposition(filename: string): string {
  if (filename === "") return "attachment";
  // Lone surrogates would make encodeURIComponent throw.
  const name = filename.toWellFormed();
  return `attachment; filename="${asciiFallback(name)}"; filename*=UTF-8''${encodeExtValue(name)}`;
}

function asciiFallback(name: string): string {
  // Anything outside visible ASCII + space, plus the quoted-string specials, becomes "_"
  // so the value can never break out of the quotes or inject header lines.
  return name.replace(/[^\x20-\x7e]|["\\]/gu, "_");
}

function encodeExtValue(name: string): string {
  // encodeURIComponent leaves '()* unescaped, but RFC 8187 attr-char does not allow them.
  return encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}
