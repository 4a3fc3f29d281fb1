import { describe, expect, it } from "vitest";
import { MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, planPartSize } from "../../src/storage/part-size.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe("planPartSize", () => {
  it("uses the preferred size when it is within limits and no hint is given", () => {
    expect(planPartSize(8 * MiB)).toBe(8 * MiB);
  });

  it("never goes below 5 MiB", () => {
    expect(planPartSize(1)).toBe(MIN_PART_SIZE);
    expect(planPartSize(1 * MiB, 100)).toBe(MIN_PART_SIZE);
    expect(planPartSize(5 * MiB - 1, 0)).toBe(MIN_PART_SIZE);
  });

  it("never goes above 5 GiB", () => {
    expect(planPartSize(10 * GiB)).toBe(MAX_PART_SIZE);
    expect(planPartSize(10 * GiB, 1)).toBe(MAX_PART_SIZE);
  });

  it("keeps the preferred size when 10,000 parts of it suffice", () => {
    expect(planPartSize(8 * MiB, 8 * MiB * MAX_PARTS)).toBe(8 * MiB);
  });

  it("grows the part so that 10,000 parts hold the hinted size", () => {
    const size = 8 * MiB * MAX_PARTS + 1;
    const part = planPartSize(8 * MiB, size);
    expect(part).toBe(Math.ceil(size / MAX_PARTS));
    expect(Math.ceil(size / part)).toBeLessThanOrEqual(MAX_PARTS);
    expect(Math.ceil(size / (part - 1))).toBeGreaterThan(MAX_PARTS);
  });

  it("handles the largest size that 10,000 parts of 5 GiB can hold", () => {
    const size = MAX_PART_SIZE * MAX_PARTS;
    expect(planPartSize(8 * MiB, size)).toBe(MAX_PART_SIZE);
    expect(() => planPartSize(8 * MiB, size + 1)).toThrow(RangeError);
  });

  it("rounds a fractional preferred size up to whole bytes", () => {
    expect(planPartSize(6 * MiB + 0.5)).toBe(6 * MiB + 1);
  });

  it("rejects nonsense inputs", () => {
    expect(() => planPartSize(0)).toThrow(RangeError);
    expect(() => planPartSize(Number.NaN)).toThrow(RangeError);
    expect(() => planPartSize(8 * MiB, -1)).toThrow(RangeError);
    expect(() => planPartSize(8 * MiB, 1.5)).toThrow(RangeError);
  });
});
