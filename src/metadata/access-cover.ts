import { and, not, or, type RowPredicate } from "../files/row-predicate.js";

/**
 * One condition an index can walk in list order: rows of one owner, rows without an owner (null
 * and '' are two index ranges), rows whose access_attributes list one value under one name (the
 * `openai_file_access_values` table), or one id.
 */
export type IndexDriver =
  | { t: "owner"; principal: string }
  | { t: "ownerIsNull" }
  | { t: "ownerIsEmpty" }
  | { t: "value"; name: string; value: string }
  | { t: "id"; id: string };

/**
 * Drivers whose union holds every row the predicate holds for (the predicate implies their OR),
 * or null when there is no such set (a `not`, an id prefix, a constant true). The list query then
 * walks each driver's index range in keyset order, applies the whole predicate to each, and merges:
 * exact, because a row outside every driver cannot satisfy the predicate.
 * An `and` needs only one child covered (the one with the fewest drivers); an `or` needs all.
 */
export function indexCover(p: RowPredicate): IndexDriver[] | null {
  switch (p.t) {
    case "const":
      return p.value ? null : [];
    case "owner":
      // '' is no one (Llama Stack's unowned rows): "is owner" never holds for it.
      return p.principal === "" ? [] : [{ t: "owner", principal: p.principal }];
    case "unowned":
      return [{ t: "ownerIsNull" }, { t: "ownerIsEmpty" }];
    case "shares":
      return p.values.map((value) => ({ t: "value", name: p.name, value }));
    case "idIs":
      return [{ t: "id", id: p.id }];
    case "idStartsWith":
    case "qualifiedMatches":
    case "not":
      return null;
    case "or": {
      const all: IndexDriver[] = [];
      for (const child of p.of) {
        const drivers = indexCover(child);
        if (drivers === null) return null;
        all.push(...drivers);
      }
      return dedupe(all);
    }
    case "and": {
      let best: IndexDriver[] | null = null;
      for (const child of p.of) {
        const drivers = indexCover(child);
        if (drivers !== null && (best === null || drivers.length < best.length)) best = drivers;
      }
      return best;
    }
  }
}

/**
 * The predicate on rows the driver already selects: leaves the driver decides become constants
 * (an owner branch need not test "is owner", nor parse any JSON when that alone permits). Exact on
 * those rows, so each branch tests less than the whole predicate.
 */
export function assuming(p: RowPredicate, driver: IndexDriver): RowPredicate {
  const TRUE: RowPredicate = { t: "const", value: true };
  const FALSE: RowPredicate = { t: "const", value: false };
  const unownedDriver = driver.t === "ownerIsNull" || driver.t === "ownerIsEmpty";
  switch (p.t) {
    case "owner":
      if (driver.t === "owner") return driver.principal === p.principal && p.principal !== "" ? TRUE : FALSE;
      return unownedDriver ? FALSE : p;
    case "unowned":
      if (driver.t === "owner") return driver.principal === "" ? TRUE : FALSE;
      return unownedDriver ? TRUE : p;
    case "shares":
      // A shared value counts only on an owned row: on a row the driver found by that value,
      // what is left to test is that it has an owner.
      if (unownedDriver) return FALSE;
      if (driver.t === "value" && driver.name === p.name && p.values.includes(driver.value)) return not({ t: "unowned" });
      return p;
    case "idIs":
      return driver.t === "id" ? (driver.id === p.id ? TRUE : FALSE) : p;
    case "and":
      return and(...p.of.map((q) => assuming(q, driver)));
    case "or":
      return or(...p.of.map((q) => assuming(q, driver)));
    case "not":
      return not(assuming(p.of, driver));
    default:
      return p;
  }
}

function dedupe(drivers: IndexDriver[]): IndexDriver[] {
  const seen = new Set<string>();
  return drivers.filter((d) => {
    const key = JSON.stringify(d);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
