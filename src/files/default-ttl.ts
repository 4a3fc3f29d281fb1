import { UPLOAD_PURPOSES, type UploadPurpose } from "./purposes.js";

/** Seconds after creation a file of each purpose expires when its client names no expiry; null: never. */
export type DefaultTtls = Readonly<Record<UploadPurpose, number | null>>;

/** OpenAI's default: batch input files expire after 30 days, everything else never. */
export const BUILT_IN_DEFAULT_TTLS: DefaultTtls = Object.freeze({
  ...(Object.fromEntries(UPLOAD_PURPOSES.map((p) => [p, null])) as Record<UploadPurpose, null>),
  batch: 2_592_000,
});

/** The built-in defaults with `overrides` on top, as FilesService's `defaultTtlSeconds` option. */
export function defaultTtlLookup(overrides: Partial<Record<UploadPurpose, number | null>> = {}): (purpose: UploadPurpose) => number | null {
  const ttls: DefaultTtls = { ...BUILT_IN_DEFAULT_TTLS, ...overrides };
  return (purpose) => ttls[purpose];
}
