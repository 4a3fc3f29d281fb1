import type { Attributes } from "../files/access-policy.js";
import type { RowPredicate } from "../files/row-predicate.js";
import type { Dialect } from "./migrations.js";

/**
 * `access_attributes` as Llama Stack stores it: JSON text of `{name: [values]}`, or JSON `null`
 * for a row written without a user (SQLAlchemy's JSON type on SQLite; `json` on PostgreSQL).
 */
export function attributesToColumn(attributes: Attributes | null | undefined): string {
  return JSON.stringify(attributes ?? null);
}

/**
 * The column's value as read (text on SQLite, already parsed on PostgreSQL), as attributes.
 * Anything that is not an object of string lists (a hand-edited row) keeps only its string lists.
 */
export function attributesFromColumn(value: unknown, reencoded = false): Attributes | null {
  // Upload rows and remembered deleted positions written by earlier versions hold the JSON text
  // encoded once more (the ORM's json column serialized the string it was given): decode twice.
  if (reencoded && typeof value === "string") {
    try {
      const inner: unknown = JSON.parse(value);
      if (typeof inner === "string") value = inner;
    } catch {
      return null;
    }
  }
  if (typeof value !== "string") return attributesFrom(value);
  // Rows of one owner carry the same text: a list page parses each distinct text once.
  const known = parsedTexts.get(value);
  if (known !== undefined) return known;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = null;
  }
  const attributes = attributesFrom(parsed);
  if (parsedTexts.size >= PARSED_TEXTS_MAX) parsedTexts.clear();
  parsedTexts.set(value, attributes);
  return attributes;
}

/** Parsed `access_attributes` texts, frozen since records share them; bounded, cleared when full. */
const parsedTexts = new Map<string, Attributes | null>();
const PARSED_TEXTS_MAX = 4096;

function attributesFrom(parsed: unknown): Attributes | null {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const attributes: Attributes = {};
  for (const [name, values] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(values)) attributes[name] = Object.freeze(values.filter((v): v is string => typeof v === "string")) as string[];
  }
  return Object.freeze(attributes);
}

/** `{ accessAttributes }` when the column holds attributes; nothing when it holds none (records leave the field unset). */
export function withAttributes(value: unknown, reencoded = false): { accessAttributes?: Attributes } {
  const attributes = attributesFromColumn(value, reencoded);
  return attributes ? { accessAttributes: attributes } : {};
}

/** A SQL condition and its parameters, in `?` placeholders. */
export interface SqlCondition {
  sql: string;
  params: unknown[];
}

/**
 * The SQL form of a RowPredicate on `openai_files` (or any table with id, owner_principal and
 * access_attributes). Every leaf is two-valued (never NULL), so NOT means what it does in the core.
 * Throws on `qualifiedMatches`, which the core filters itself.
 */
export function predicateToSql(p: RowPredicate, dialect: Dialect, table?: string): SqlCondition {
  const c = (name: string) => (table ? `${table}."${name}"` : `"${name}"`);
  switch (p.t) {
    case "const":
      return { sql: p.value ? "1 = 1" : "1 = 0", params: [] };
    case "unowned":
      return { sql: `(${c("owner_principal")} is null or ${c("owner_principal")} = '')`, params: [] };
    case "owner":
      // '' is no one (Llama Stack's unowned rows), as in rowMatches.
      return { sql: `(${c("owner_principal")} is not null and ${c("owner_principal")} <> '' and ${c("owner_principal")} = ?)`, params: [p.principal] };
    case "shares":
      return sharesSql(p.name, p.values, dialect, c);
    case "idIs":
      return { sql: `${c("id")} = ?`, params: [p.id] };
    case "idStartsWith":
      return { sql: `substr(${c("id")}, 1, ?) = ?`, params: [[...p.prefix].length, p.prefix] };
    case "qualifiedMatches":
      throw new Error("a regex resource scope cannot be expressed in SQL; the service filters it");
    case "and":
    case "or": {
      // Cheap tests first: both databases stop at the first term that decides, so a row the owner
      // test already admits never has its JSON parsed. Order does not change the value (every leaf is two-valued).
      const parts = [...p.of].sort((a, b) => parsesJson(a) - parsesJson(b)).map((q) => predicateToSql(q, dialect, table));
      return { sql: `(${parts.map((q) => q.sql).join(p.t === "and" ? " and " : " or ")})`, params: parts.flatMap((q) => q.params) };
    }
    case "not": {
      const inner = predicateToSql(p.of, dialect, table);
      return { sql: `(not ${inner.sql})`, params: inner.params };
    }
  }
}

/** 1 when testing the predicate may parse a row's JSON, else 0. */
function parsesJson(p: RowPredicate): number {
  if (p.t === "shares") return 1;
  if (p.t === "and" || p.t === "or") return p.of.some((q) => parsesJson(q) === 1) ? 1 : 0;
  if (p.t === "not") return parsesJson(p.of);
  return 0;
}

/**
 * An owned row whose `name` attribute is a list holding one of `values`. The attribute is found
 * by comparing keys (no JSON path is built from the name), and malformed JSON never raises.
 */
function sharesSql(name: string, values: readonly string[], dialect: Dialect, c: (name: string) => string): SqlCondition {
  const list = values.map(() => "?").join(", ");
  const pre = prefilter(values, dialect, c("access_attributes"));
  const owned = `${c("owner_principal")} is not null and ${c("owner_principal")} <> ''${pre.sql}`;
  if (dialect === "sqlite") {
    const column = c("access_attributes");
    return {
      sql: `(${owned} and exists (select 1 from json_each(case when json_valid(${column}) then ${column} else 'null' end) as k
        where k.key = ? and k.type = 'array'
          and exists (select 1 from json_each(k.value) as v where v.type = 'text' and v.value in (${list}))))`,
      params: [...pre.params, name, ...values],
    };
  }
  const column = `${c("access_attributes")}::json`;
  return {
    sql: `(${owned} and exists (select 1 from json_each(case when json_typeof(${column}) = 'object' then ${column} else '{}'::json end) as k(key, value)
      where k.key = ? and json_typeof(k.value) = 'array'
        and exists (select 1 from json_array_elements(case when json_typeof(k.value) = 'array' then k.value else '[]'::json end) as v(e)
          where json_typeof(v.e) = 'string' and (v.e #>> '{}') in (${list}))))`,
    params: [...pre.params, name, ...values],
  };
}

/**
 * A cheap necessary condition checked before the JSON is parsed: the stored text contains one of
 * the values as a JSON string. Only for values whose JSON text is the same however it was written
 * (printable ASCII without quotes or backslashes; Python's json.dumps escapes anything else), so it
 * never drops a row the exact check would keep; otherwise there is no prefilter.
 */
function prefilter(values: readonly string[], dialect: Dialect, column: string): SqlCondition {
  if (!values.every((v) => /^[\x20-\x7e]*$/.test(v) && !/["\\]/.test(v))) return { sql: "", params: [] };
  // coalesce: a NULL column (rows from before the column existed) must make this false, never NULL.
  const test = dialect === "sqlite" ? `coalesce(instr(${column}, ?), 0) > 0` : `coalesce(strpos(${column}::text, ?), 0) > 0`;
  return { sql: ` and (${values.map(() => test).join(" or ")})`, params: values.map((v) => `"${v}"`) };
}
