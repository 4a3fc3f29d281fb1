import type { ListQuery } from "../files/ports.js";
import { and, type RowPredicate } from "../files/row-predicate.js";
import { assuming, indexCover, type IndexDriver } from "./access-cover.js";
import { predicateToSql, type SqlCondition } from "./access-sql.js";
import { ACCESS_VALUES_TABLE, FILES_TABLE } from "./entity.js";
import type { Dialect } from "./migrations.js";

/** More index ranges than this (a user with dozens of shared values) and one ordered scan is cheaper. */
const MAX_BRANCHES = 16;

export interface ListStatementOptions {
  dialect: Dialect;
  /** The columns the page returns. */
  columns: readonly string[];
  /** The "not expired at now" condition on the row `alias`. */
  notExpired: (alias: string, now: number) => SqlCondition;
}

/** A position in the listing's order. */
export interface ListKey {
  createdAt: number;
  id: string;
}

/** How one page is read: nothing, one ordered scan, or the union of index branches (see listPlan). */
export type ListPlan =
  | { t: "none" }
  | { t: "scan"; statement: SqlCondition }
  | { t: "branches"; union: SqlCondition; branches: ListBranch[]; byIds: (ids: string[]) => SqlCondition };

export interface ListBranch {
  /**
   * The branch's first `limit` rows; with `bound`, only rows at or before that position in the
   * order; with `keysOnly`, only their created_at and id (the page's rows are then read by `byIds`).
   */
  rows(bound?: ListKey, keysOnly?: boolean): SqlCondition;
  /**
   * The (created_at, id) of the branch's first index entry and of its `limit`-th, as rows with
   * `k` = 0 and 1, no row read and no filter applied: whether the branch holds anything for this
   * page, and how far into the listing it reaches. No `k` = 1 row: it holds fewer.
   */
  reach: SqlCondition;
}

/**
 * One page of the listing.
 *
 * When the visibility predicate is covered by index drivers (see indexCover: the owner, unowned
 * rows, a shared attribute value), each driver becomes a branch that walks its own index range in
 * keyset order with the remaining conditions applied and stops at `limit`; the page is the first
 * `limit` rows of their union (`union`, one statement). A single ordered scan with the predicate as
 * a filter would test every row it passes (about 18 per visible row at 100,000 rows under the
 * Llama Stack preset). Where statements are cheap (SQLite on its own connection), the branches can
 * instead run one by one, densest first, each bounded by the page so far (see runBranches).
 * Without a cover (no policy, a `not` rule) the page is the single scan.
 */
export function listPlan(query: ListQuery, options: ListStatementOptions): ListPlan {
  const { dialect } = options;
  // PostgreSQL's json has no equality, which UNION needs to drop a row two branches found: as text
  // (attributesFromColumn reads either).
  const allColumns = options.columns
    .map((c) => (c === "access_attributes" && dialect === "postgresql" ? `f."${c}"::text as "${c}"` : `f."${c}"`))
    .join(", ");
  const keyColumns = `f."created_at", f."id"`;
  const dir = query.order === "asc" ? "asc" : "desc";
  const predicate: RowPredicate | undefined =
    query.owner !== undefined ? and({ t: "owner", principal: query.owner }, query.visible ?? { t: "const", value: true }) : query.visible;

  // Every condition but the keyset position and the policy's, on the files row `f`.
  const filters: SqlCondition[] = [options.notExpired("f", query.now)];
  if (query.purpose !== undefined) filters.push({ sql: `f."purpose" = ?`, params: [query.purpose] });
  const allowed = (p: RowPredicate | undefined): SqlCondition[] =>
    p === undefined || (p.t === "const" && p.value) ? [] : [predicateToSql(p, dialect, "f")];
  // Row-value comparisons: "strictly after (c, i) in this order", and "not past the bound". Both
  // databases start and stop an index range scan on them, unlike the equivalent OR forms.
  const after = (createdAt: string, id: string): SqlCondition[] =>
    query.after ? [{ sql: `(${createdAt}, ${id}) ${dir === "asc" ? ">" : "<"} (?, ?)`, params: [query.after.createdAt, query.after.id] }] : [];
  const upTo = (createdAt: string, id: string, bound: ListKey | undefined): SqlCondition[] =>
    bound ? [{ sql: `(${createdAt}, ${id}) ${dir === "asc" ? "<=" : ">="} (?, ?)`, params: [bound.createdAt, bound.id] }] : [];
  const order = (createdAt: string, id: string) => `order by ${createdAt} ${dir}, ${id} ${dir}`;

  const drivers = predicate === undefined ? null : indexCover(predicate);
  if (drivers !== null && drivers.length === 0) return { t: "none" };
  if (drivers === null || drivers.length > MAX_BRANCHES) {
    const where = joinAnd([...filters, ...allowed(predicate), ...after(`f."created_at"`, `f."id"`)]);
    return {
      t: "scan",
      statement: {
        sql: `select ${allColumns} from "${FILES_TABLE}" as f where ${where.sql} ${order(`f."created_at"`, `f."id"`)} limit ?`,
        params: [...where.params, query.limit],
      },
    };
  }

  // A branch whose rows the predicate refuses outright (a forbid rule for the owner) is left out.
  const live = drivers
    .map((driver) => ({ driver, rest: assuming(predicate!, driver) }))
    .filter(({ rest }) => !(rest.t === "const" && !rest.value));
  if (live.length === 0) return { t: "none" };
  const branches = live.map(({ driver, rest }) => branch(driver, [...filters, ...allowed(rest)]));
  const parts = branches.map((b, i) => {
    const { sql, params } = b.rows(undefined, true);
    // A compound member cannot carry its own ORDER BY / LIMIT directly; a subquery can.
    return { sql: `select * from (${sql}) as b${i}`, params };
  });
  return {
    t: "branches",
    branches,
    byIds: (ids) =>
      dialect === "sqlite"
        ? { sql: `select ${allColumns} from "${FILES_TABLE}" as f where f."id" in (select value from json_each(?))`, params: [JSON.stringify(ids)] }
        : { sql: `select ${allColumns} from "${FILES_TABLE}" as f where f."id" = any(?)`, params: [ids] },
    // The branches' positions, merged (UNION: a row two branches found, such as the owner's
    // listing the owner's role, once), then the page's rows read whole by id.
    union: branches.length === 1 ? branches[0]!.rows() : {
      sql: `select ${allColumns} from "${FILES_TABLE}" as f where f."id" in (
          select "id" from (${parts.map((b) => b.sql).join(" union ")} order by "created_at" ${dir}, "id" ${dir} limit ?) as page
        ) ${order(`f."created_at"`, `f."id"`)}`,
      params: [...parts.flatMap((b) => b.params), query.limit],
    },
  };

  function branch(driver: IndexDriver, conditions: SqlCondition[]): ListBranch {
    if (driver.t === "value") {
      // The side table's primary key (name, value, created_at, file_id) is the walk; each step
      // looks the file up by id and tests it.
      const start: SqlCondition = { sql: `a."name" = ? and a."value" = ?`, params: [driver.name, driver.value] };
      const key = [`a."created_at"`, `a."file_id"`] as const;
      return {
        rows: (bound, keysOnly) => {
          const where = joinAnd([start, { sql: `f."id" = a."file_id"`, params: [] }, ...after(...key), ...upTo(...key, bound), ...conditions]);
          return {
            sql: `select ${keysOnly ? keyColumns : allColumns} from "${ACCESS_VALUES_TABLE}" as a cross join "${FILES_TABLE}" as f where ${where.sql} ${order(...key)} limit ?`,
            params: [...where.params, query.limit],
          };
        },
        reach: reach(`"${ACCESS_VALUES_TABLE}" as a`, start, key),
      };
    }
    const start: SqlCondition =
      driver.t === "owner"
        ? { sql: `f."owner_principal" = ?`, params: [driver.principal] }
        : driver.t === "ownerIsNull"
          ? { sql: `f."owner_principal" is null`, params: [] }
          : driver.t === "ownerIsEmpty"
            ? { sql: `f."owner_principal" = ''`, params: [] }
            : { sql: `f."id" = ?`, params: [driver.id] };
    const key = [`f."created_at"`, `f."id"`] as const;
    return {
      rows: (bound, keysOnly) => {
        const where = joinAnd([start, ...after(...key), ...upTo(...key, bound), ...conditions]);
        return { sql: `select ${keysOnly ? keyColumns : allColumns} from "${FILES_TABLE}" as f where ${where.sql} ${order(...key)} limit ?`, params: [...where.params, query.limit] };
      },
      reach: reach(`"${FILES_TABLE}" as f`, start, key),
    };
  }

  /** Index-only: the driver's index holds (…, created_at, id). */
  function reach(from: string, start: SqlCondition, [createdAt, id]: readonly [string, string]): SqlCondition {
    const where = joinAnd([start, ...after(createdAt, id)]);
    const probe = (k: number) =>
      `select * from (select ${k} as k, ${createdAt} as created_at, ${id} as id from ${from} where ${where.sql} ${order(createdAt, id)} limit 1 offset ?) as r${k}`;
    return { sql: `${probe(0)} union all ${probe(1)}`, params: [...where.params, 0, ...where.params, query.limit - 1] };
  }
}

/** Rows as a list page reads them: at least their position. */
export interface KeyedRow {
  created_at: number | string;
  id: string;
}

/**
 * The page from its branches, one statement each: the branches that reach least far into the
 * listing (the densest) run first, and once `limit` rows are in hand every later branch stops at
 * the last of them, so it reads only rows that can still make the page. Branches read positions
 * only; the page's rows are read once at the end (building each row's object is most of a
 * statement's cost). Exact for any order of branches. `run` answers undefined when it cannot
 * read, and so does this.
 */
export function runBranches<T extends KeyedRow>(
  plan: Extract<ListPlan, { t: "branches" }>,
  query: Pick<ListQuery, "order" | "limit">,
  run: (statement: SqlCondition) => T[] | undefined,
): T[] | undefined {
  if (plan.branches.length === 1) return run(plan.branches[0]!.rows());
  const sign = query.order === "asc" ? 1 : -1;
  let codePoints = false; // set once an id needs SQLite's byte order rather than JS's
  const compare = (a: KeyedRow, b: KeyedRow) =>
    sign * (Number(a.created_at) - Number(b.created_at) || (a.id === b.id ? 0 : codePoints ? compareIds(a.id, b.id) : a.id < b.id ? -1 : 1));
  const note = (rows: readonly KeyedRow[]) => {
    if (!codePoints) codePoints = rows.some((r) => NOT_UTF16_ORDERED.test(r.id));
  };
  // Every branch's reach in one statement (a statement's fixed cost is about that of ten rows).
  const probes = plan.branches.map((b, i) => ({ sql: `select ${i} as b, k, created_at, id from (${b.reach.sql}) as q${i}`, params: b.reach.params }));
  const found = run({ sql: probes.map((p) => p.sql).join(" union all "), params: probes.flatMap((p) => p.params) }) as
    | (KeyedRow & { b: number; k: number })[]
    | undefined;
  if (found === undefined) return undefined;
  note(found);
  const reaches = plan.branches
    .map((branch, i) => ({ branch, first: found.find((r) => r.b === i && r.k === 0), reach: found.find((r) => r.b === i && r.k === 1) }))
    // A branch with nothing past the cursor is left out.
    .filter((r) => r.first !== undefined);
  // Nearest reach first; a branch with fewer than `limit` entries reaches to the end, so goes last.
  reaches.sort((a, b) => (a.reach && b.reach ? compare(a.reach, b.reach) : a.reach ? -1 : b.reach ? 1 : 0));
  // The densest branch reads whole rows (most of the page is usually its); the others only
  // positions, and the rows of theirs that make the page are read at the end.
  let page: KeyedRow[] = [];
  const whole = new Map<string, T>();
  for (const [i, { branch }] of reaches.entries()) {
    const bound = page.length === query.limit ? page.at(-1)! : undefined;
    const found = run(branch.rows(bound && { createdAt: Number(bound.created_at), id: bound.id }, i > 0));
    if (found === undefined) return undefined;
    note(found);
    if (i === 0) for (const row of found) whole.set(row.id, row);
    const seen = new Set(page.map((r) => r.id));
    page = [...page, ...found.filter((r) => !seen.has(r.id))].sort(compare).slice(0, query.limit);
  }
  const missing = page.filter((r) => !whole.has(r.id)).map((r) => r.id);
  if (missing.length > 0) {
    const rows = run(plan.byIds(missing));
    if (rows === undefined) return undefined;
    for (const row of rows) whole.set(row.id, row);
  }
  // A row deleted between the statements is left out: the page is one row short, as if read a moment later.
  return page.map((r) => whole.get(r.id)).filter((r): r is T => r !== undefined);
}

/**
 * JS compares strings by UTF-16 unit and SQLite's BINARY by UTF-8 byte, i.e. by code point; the two
 * orders differ only where a surrogate (U+D800–DFFF, half of a character past U+FFFF) meets
 * U+E000–FFFF. Ids without either compare the same both ways.
 */
const NOT_UTF16_ORDERED = /[\uD800-\uFFFF]/;

function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function joinAnd(conditions: SqlCondition[]): SqlCondition {
  return { sql: conditions.map((c) => `(${c.sql})`).join(" and "), params: conditions.flatMap((c) => c.params) };
}
