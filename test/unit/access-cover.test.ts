/**
 * The list query's index cover (src/metadata/access-cover.ts), checked exhaustively on random
 * predicates and rows: every row a predicate admits lies in some driver's range, and on a driver's
 * rows the simplified predicate decides exactly as the whole one. Together these make the union of
 * branches equal to the single filtered scan.
 */
import { describe, expect, it } from "vitest";
import { rng, type Rng } from "../support/seeded-rng.js";
import { FILE_RESOURCE_TYPE } from "../../src/files/access-control.js";
import { LLAMA_STACK_DEFAULT_POLICY, OWNER_ONLY_POLICY, ownAttribute, type Attributes } from "../../src/files/access-policy.js";
import { compileRowPredicate, rowMatches, type PredicateRow, type RowPredicate } from "../../src/files/row-predicate.js";
import { assuming, indexCover, type IndexDriver } from "../../src/metadata/access-cover.js";

const SEED = Number(process.env.FILES_COVER_SEED ?? Math.floor(Math.random() * 2 ** 31));


const PRINCIPALS = ["alice", "bob", ""] as const;
const NAMES = ["roles", "teams"] as const;
const VALUES = ["a", "b", "c"] as const;
const IDS = ["file-1", "file-2", "file-3"] as const;

function predicate(r: Rng, depth: number): RowPredicate {
  const leaf = depth <= 0 || r.chance(0.4);
  if (leaf) {
    switch (r.int(6)) {
      case 0:
        return { t: "owner", principal: r.pick(PRINCIPALS) };
      case 1:
        return { t: "unowned" };
      case 2:
        return { t: "shares", name: r.pick(NAMES), values: VALUES.filter(() => r.chance(0.5)).concat(r.pick(VALUES)) };
      case 3:
        return { t: "idIs", id: r.pick(IDS) };
      case 4:
        return { t: "idStartsWith", prefix: "file-" };
      default:
        return { t: "const", value: r.chance(0.5) };
    }
  }
  const kind = r.int(3);
  if (kind === 2) return { t: "not", of: predicate(r, depth - 1) };
  const of = Array.from({ length: 1 + r.int(3) }, () => predicate(r, depth - 1));
  return { t: kind === 0 ? "and" : "or", of };
}

function row(r: Rng): PredicateRow {
  const attributes: Attributes | null = r.chance(0.3)
    ? null
    : Object.fromEntries(NAMES.filter(() => r.chance(0.6)).map((name) => [name, VALUES.filter(() => r.chance(0.4))]));
  return { id: r.pick(IDS), ownerPrincipal: r.pick([...PRINCIPALS, null]), accessAttributes: attributes };
}

/** Which rows a driver's index range holds (the side table has every listed value, owned or not). */
function inRange(d: IndexDriver, row: PredicateRow): boolean {
  switch (d.t) {
    case "owner":
      return row.ownerPrincipal === d.principal;
    case "ownerIsNull":
      return row.ownerPrincipal === null;
    case "ownerIsEmpty":
      return row.ownerPrincipal === "";
    case "value":
      return !!ownAttribute(row.accessAttributes, d.name)?.includes(d.value);
    case "id":
      return row.id === d.id;
  }
}

describe(`the list query's index cover (seed ${SEED})`, () => {
  it("covers every admitted row, and each branch's simplified predicate decides exactly as the whole", () => {
    const r = rng(SEED);
    let covered = 0;
    for (let n = 0; n < 20_000; n++) {
      const p = predicate(r, 3);
      const drivers = indexCover(p);
      if (drivers === null) continue;
      covered++;
      for (let k = 0; k < 8; k++) {
        const x = row(r);
        const admitted = rowMatches(p, x);
        const where = `seed ${SEED}: ${JSON.stringify(p)} on ${JSON.stringify(x)}`;
        if (admitted) expect(drivers.some((d) => inRange(d, x)), `admitted but in no range; ${where}`).toBe(true);
        for (const d of drivers) {
          if (inRange(d, x)) expect(rowMatches(assuming(p, d), x), `${JSON.stringify(d)}; ${where}`).toBe(admitted);
        }
      }
    }
    expect(covered).toBeGreaterThan(5_000);
  });

  it("the presets: one owner range for owner_only; owner, unowned and each shared value for Llama Stack's", () => {
    const user = { principal: "bob", attributes: { roles: ["bob"], teams: ["ml", "ops"] } };
    expect(indexCover(compileRowPredicate(OWNER_ONLY_POLICY, "read", FILE_RESOURCE_TYPE, user))).toEqual([{ t: "owner", principal: "bob" }]);
    const preset = compileRowPredicate(LLAMA_STACK_DEFAULT_POLICY, "read", FILE_RESOURCE_TYPE, user);
    const drivers = indexCover(preset)!;
    expect(drivers).toEqual(
      expect.arrayContaining([
        { t: "owner", principal: "bob" },
        { t: "ownerIsNull" },
        { t: "ownerIsEmpty" },
        { t: "value", name: "roles", value: "bob" },
        { t: "value", name: "teams", value: "ml" },
        { t: "value", name: "teams", value: "ops" },
      ]),
    );
    expect(drivers).toHaveLength(6);
    // On the owner's own rows nothing is left to test, and no JSON is read.
    expect(assuming(preset, { t: "owner", principal: "bob" })).toEqual({ t: "const", value: true });
    expect(assuming(preset, { t: "ownerIsNull" })).toEqual({ t: "const", value: true });
  });

  it("has no cover where a range cannot hold every admitted row (a negation, an id prefix, everything)", () => {
    expect(indexCover({ t: "not", of: { t: "owner", principal: "bob" } })).toBeNull();
    expect(indexCover({ t: "idStartsWith", prefix: "file-" })).toBeNull();
    expect(indexCover({ t: "const", value: true })).toBeNull();
    expect(indexCover({ t: "const", value: false })).toEqual([]);
    expect(indexCover({ t: "and", of: [{ t: "not", of: { t: "unowned" } }, { t: "owner", principal: "a" }] })).toEqual([{ t: "owner", principal: "a" }]);
  });
});
