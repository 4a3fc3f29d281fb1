/** The primitives of the ratios and PASS/FAIL checks (summary.ts, grpc-vs-rest.ts). */

export interface TargetCheck {
  target: string;
  measured: string;
  threshold: string;
  status: "PASS" | "FAIL" | "n/a";
}

/** a ÷ b, or null when either is missing or b is not positive. */
export const div = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a !== undefined && a !== null && b !== undefined && b !== null && b > 0 ? a / b : null;

export const fmt = (x: number | null | undefined, digits = 2, suffix = "") => (x === null || x === undefined || !Number.isFinite(x) ? "-" : `${x.toFixed(digits)}${suffix}`);

function verdict(target: string, value: number | null, passes: (v: number) => boolean, measured: string, thresholdText: string): TargetCheck {
  return { target, measured: value === null ? "not measured" : measured, threshold: thresholdText, status: value === null ? "n/a" : passes(value) ? "PASS" : "FAIL" };
}

/** PASS when `value` ≥ `threshold`; n/a when not measured. */
export const check = (target: string, value: number | null, threshold: number, measured: string, thresholdText: string): TargetCheck =>
  verdict(target, value, (v) => v >= threshold, measured, thresholdText);

/** PASS when `value` ≤ `limit`; n/a when not measured. */
export const atMost = (target: string, value: number | null, limit: number, measured: string, limitText: string): TargetCheck =>
  verdict(target, value, (v) => v <= limit, measured, limitText);
