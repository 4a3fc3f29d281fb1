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
  /** The columns the page returns, unqualified. */
  columns: string;
  /** The "not expired at now" condition on the row `alias`. */
  notExpired: (alias: string, now: number) => SqlCondition;
}

/**
 * One page of the listing as one SQL statement, or null when no row can match.
 *
 * When the visibility predicate is covered by index drivers (see indexCover: the owner, unowned
 * rows, a shared attribute value), each driver becomes a branch that walks its own index range in
 * keyset order with the full conditions applied and stops at `limit`; the page is the first
 * `limit` rows of their union. A single ordered scan with the predicate as a filter would test
 * every row it passes (about 18 per visible row at 100,000 rows under the Llama Stack preset).
 * Without a cover (no policy, a `not` rule) the page is that single scan.
 */
export function listStatement(query: ListQuery, options: ListStatementOptions): SqlCondition | null {
  const { dialect } = options;
  const dir = query.order === "asc" ? "asc" : "desc";
  const op = dir === "asc" ? ">" : "<";
  const predicate: RowPredicate | undefined =
    query.owner !== undefined ? and({ t: "owner", principal: query.owner }, query.visible ?? { t: "const", value: true }) : query.visible;

  // Every condition but the keyset position and the policy's, on the files row `f`.
  const filters: SqlCondition[] = [options.notExpired("f", query.now)];
  if (query.purpose !== undefined) filters.push({ sql: `f."purpose" = ?`, params: [query.purpose] });
  const allowed = (p: RowPredicate | undefined): SqlCondition[] =>
    p === undefined || (p.t === "const" && p.value) ? [] : [predicateToSql(p, dialect, "f")];
  // Row-value comparison: "strictly after (c, i) in this order". Both databases start an index
  // range scan from it, unlike the equivalent OR form.
  const after = (createdAt: string, id: string): SqlCondition[] =>
    query.after ? [{ sql: `(${createdAt}, ${id}) ${op} (?, ?)`, params: [query.after.createdAt, query.after.id] }] : [];

  const drivers = predicate === undefined ? null : indexCover(predicate);
  if (drivers !== null && drivers.length === 0) return null;
  if (drivers === null || drivers.length > MAX_BRANCHES) {
    const where = joinAnd([...filters, ...allowed(predicate), ...after(`f."created_at"`, `f."id"`)]);
    return {
      sql: `select ${options.columns} from "${FILES_TABLE}" as f where ${where.sql} order by f."created_at" ${dir}, f."id" ${dir} limit ?`,
      params: [...where.params, query.limit],
    };
  }

  // A branch whose rows the predicate refuses outright (a forbid rule for the owner) is left out.
  const live = drivers
    .map((driver) => ({ driver, rest: assuming(predicate!, driver) }))
    .filter(({ rest }) => !(rest.t === "const" && !rest.value));
  if (live.length === 0) return null;
  const branches = live.map(({ driver, rest }, i) => branch(driver, [...filters, ...allowed(rest)], i));
  return {
    sql: `select ${options.columns} from "${FILES_TABLE}" where "id" in (${branches.map((b) => b.sql).join(" union all ")})
      order by "created_at" ${dir}, "id" ${dir} limit ?`,
    params: [...branches.flatMap((b) => b.params), query.limit],
  };

  function branch(driver: IndexDriver, conditions: SqlCondition[], i: number): SqlCondition {
    if (driver.t === "value") {
      // The side table's primary key (name, value, created_at, file_id) is the walk; each step
      // looks the file up by id and tests it.
      const where = joinAnd([
        { sql: `a."name" = ? and a."value" = ? and f."id" = a."file_id"`, params: [driver.name, driver.value] },
        ...after(`a."created_at"`, `a."file_id"`),
        ...conditions,
      ]);
      return wrap(
        `select f."id" from "${ACCESS_VALUES_TABLE}" as a cross join "${FILES_TABLE}" as f where ${where.sql}
          order by a."created_at" ${dir}, a."file_id" ${dir} limit ?`,
        where.params,
      );
    }
    const start: SqlCondition =
      driver.t === "owner"
        ? { sql: `f."owner_principal" = ?`, params: [driver.principal] }
        : driver.t === "ownerIsNull"
          ? { sql: `f."owner_principal" is null`, params: [] }
          : driver.t === "ownerIsEmpty"
            ? { sql: `f."owner_principal" = ''`, params: [] }
            : { sql: `f."id" = ?`, params: [driver.id] };
    const where = joinAnd([start, ...after(`f."created_at"`, `f."id"`), ...conditions]);
    return wrap(
      `select f."id" from "${FILES_TABLE}" as f where ${where.sql} order by f."created_at" ${dir}, f."id" ${dir} limit ?`,
      where.params,
    );

    // A compound member cannot carry its own ORDER BY / LIMIT directly; a subquery can.
    function wrap(sql: string, params: unknown[]): SqlCondition {
      return { sql: `select "id" from (${sql}) as b${i}`, params: [...params, query.limit] };
    }
  }
}

function joinAnd(conditions: SqlCondition[]): SqlCondition {
  return { sql: conditions.map((c) => `(${c.sql})`).join(" and "), params: conditions.flatMap((c) => c.params) };
}
