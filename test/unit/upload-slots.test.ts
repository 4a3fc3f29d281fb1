import { describe, expect, it } from "vitest";
import { FilesError } from "../../src/files/errors.js";
import { UploadSlots } from "../../src/files/upload-slots.js";

function refused(fn: () => unknown): FilesError {
  try {
    fn();
  } catch (err) {
    return err as FilesError;
  }
  throw new Error("expected a refusal");
}

describe("UploadSlots", () => {
  it("limits each principal, and frees a slot exactly once", () => {
    const slots = new UploadSlots({ perPrincipal: 2 });
    const a1 = slots.acquire("alice");
    slots.acquire("alice");
    const err = refused(() => slots.acquire("alice"));
    expect(err.code).toBe("resource_exhausted");
    expect(err.message).toMatch(/at most 2 at once/);
    // Another principal is not affected.
    slots.acquire("bob");
    a1();
    a1(); // a second release must not free someone else's slot
    slots.acquire("alice");
    expect(refused(() => slots.acquire("alice")).code).toBe("resource_exhausted");
    expect(slots.inFlight).toBe(3);
  });

  it("limits everyone together", () => {
    const slots = new UploadSlots({ global: 2, perPrincipal: 5 });
    const release = slots.acquire("a");
    slots.acquire(null);
    expect(refused(() => slots.acquire("c")).message).toMatch(/maximum of 2 uploads/);
    release();
    slots.acquire("c");
    expect(slots.inFlight).toBe(2);
  });

  it("without limits, counts only", () => {
    const slots = new UploadSlots();
    const releases = Array.from({ length: 100 }, () => slots.acquire("x"));
    expect(slots.inFlight).toBe(100);
    for (const r of releases) r();
    expect(slots.inFlight).toBe(0);
  });
});
