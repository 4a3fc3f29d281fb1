/** S3's multipart limits: every part but the last is 5 MiB to 5 GiB, and an upload has at most 10,000 parts. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;

/**
 * The part size for a multipart upload: the preferred size, raised so that 10,000 parts
 * hold `sizeHint` bytes, kept within S3's 5 MiB to 5 GiB.
 *
 * Without a size hint the preferred size caps the object at 10,000 × that size
 * (about 78 GiB at 8 MiB), which is why callers should pass the declared size.
 * Throws a RangeError for inputs no part size can serve.
 */
export function planPartSize(preferred: number, sizeHint?: number): number {
  if (!Number.isFinite(preferred) || preferred <= 0) {
    throw new RangeError(`preferred part size must be a positive number, got ${preferred}`);
  }
  if (sizeHint !== undefined && (!Number.isSafeInteger(sizeHint) || sizeHint < 0)) {
    throw new RangeError(`size hint must be a non-negative integer, got ${sizeHint}`);
  }
  const needed = sizeHint === undefined ? 0 : Math.ceil(sizeHint / MAX_PARTS);
  if (needed > MAX_PART_SIZE) {
    throw new RangeError(`${sizeHint} bytes do not fit in ${MAX_PARTS} parts of at most ${MAX_PART_SIZE} bytes`);
  }
  return Math.min(MAX_PART_SIZE, Math.max(MIN_PART_SIZE, Math.ceil(preferred), needed));
}
