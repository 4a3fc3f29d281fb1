import { ownAttribute, regexMatchesAtStart, type AccessPolicy, type Action, type Attributes, type Condition, type User, LLAMA_STACK_DEFAULT_POLICY } from "./access-policy.js";

/**
 * A policy decision for one user and action, as a condition on stored rows: which rows of one
 * resource type the user may act on. Built by compileRowPredicate, evaluated here (for the memory
 * adapter and for the service's own filtering) and translated to SQL by the metadata adapter.
 */
export type RowPredicate =
  | { t: "const"; value: boolean }
  /** The row has no owner (owner_principal null or ''). */
  | { t: "unowned" }
  /** The row's owner is this principal. */
  | { t: "owner"; principal: string }
  /** The row has an owner whose `name` attribute lists one of `values` (never empty). */
  | { t: "shares"; name: string; values: string[] }
  /** The row's id is exactly this. */
  | { t: "idIs"; id: string }
  /** The row's id starts with this. */
  | { t: "idStartsWith"; prefix: string }
  /** The row's qualified id (`type::id`) matches this pattern at its start; not expressible in SQL. */
  | { t: "qualifiedMatches"; pattern: string; type: string }
  | { t: "and"; of: RowPredicate[] }
  | { t: "or"; of: RowPredicate[] }
  | { t: "not"; of: RowPredicate };

/** A row as a predicate sees it. */
export interface PredicateRow {
  id: string;
  ownerPrincipal: string | null;
  accessAttributes?: Attributes | null;
}

const TRUE: RowPredicate = { t: "const", value: true };
const FALSE: RowPredicate = { t: "const", value: false };
const isConst = (p: RowPredicate, value: boolean) => p.t === "const" && p.value === value;

export function and(...of: RowPredicate[]): RowPredicate {
  if (of.some((p) => isConst(p, false))) return FALSE;
  const rest = of.filter((p) => !isConst(p, true)).flatMap((p) => (p.t === "and" ? p.of : [p]));
  return rest.length === 0 ? TRUE : rest.length === 1 ? rest[0]! : { t: "and", of: rest };
}

export function or(...of: RowPredicate[]): RowPredicate {
  if (of.some((p) => isConst(p, true))) return TRUE;
  const rest = of.filter((p) => !isConst(p, false)).flatMap((p) => (p.t === "or" ? p.of : [p]));
  return rest.length === 0 ? FALSE : rest.length === 1 ? rest[0]! : { t: "or", of: rest };
}

export function not(p: RowPredicate): RowPredicate {
  if (p.t === "const") return { t: "const", value: !p.value };
  if (p.t === "not") return p.of;
  return { t: "not", of: p };
}

/**
 * The rows of `type` on which `user` may do `action` under `policy`: the first-match rule order
 * folded into one boolean expression, with everything that depends only on the user or the action
 * decided here. Exactly `decide` for every row (the differential and unit tests hold it to that).
 */
export function compileRowPredicate(policy: AccessPolicy, action: Action, type: string, user: User | null): RowPredicate {
  if (user === null) return TRUE;
  const rules = policy.length === 0 ? LLAMA_STACK_DEFAULT_POLICY : policy;
  let decision: RowPredicate = FALSE;
  for (let i = rules.length - 1; i >= 0; i--) {
    const rule = rules[i]!;
    const scope = rule.scope;
    let applies: RowPredicate =
      scope.actions.includes(action) && (scope.principal === undefined || scope.principal === user.principal) ? TRUE : FALSE;
    if (scope.resource !== undefined) applies = and(applies, resourceMatches(scope.resource, type));
    if (rule.when) applies = and(applies, ...rule.when.map((c) => conditionPredicate(c, user)));
    else if (rule.unless) applies = and(applies, not(and(...rule.unless.map((c) => conditionPredicate(c, user)))));
    decision = rule.effect === "permit" ? or(applies, decision) : and(not(applies), decision);
  }
  return decision;
}

function resourceMatches(scope: string, type: string): RowPredicate {
  const typePrefix = `${type}::`;
  if (scope.startsWith("regex:")) return { t: "qualifiedMatches", pattern: scope.slice(6), type };
  const exact = scope.startsWith(typePrefix) ? ({ t: "idIs", id: scope.slice(typePrefix.length) } as const) : FALSE;
  if (!scope.endsWith("::*")) return exact;
  const prefix = scope.slice(0, -1);
  // The prefix either covers only (part of) the type, decided here, or reaches into the id.
  const wildcard: RowPredicate =
    prefix.length <= typePrefix.length
      ? typePrefix.startsWith(prefix) ? TRUE : FALSE
      : prefix.startsWith(typePrefix) ? { t: "idStartsWith", prefix: prefix.slice(typePrefix.length) } : FALSE;
  return or(exact, wildcard);
}

function conditionPredicate(condition: Condition, user: User): RowPredicate {
  switch (condition.kind) {
    case "user is owner":
      return { t: "owner", principal: user.principal };
    case "user is not owner":
      return not({ t: "owner", principal: user.principal });
    case "resource is unowned":
      return { t: "unowned" };
    case "user in owners":
      return shares(condition.name, user);
    case "user not in owners":
      return not(shares(condition.name, user));
    case "user with value in":
      return ownAttribute(user.attributes, condition.name)?.includes(condition.value) ? TRUE : FALSE;
    case "user with value not in":
      return ownAttribute(user.attributes, condition.name)?.includes(condition.value) ? FALSE : TRUE;
  }
}

function shares(name: string, user: User): RowPredicate {
  const values = ownAttribute(user.attributes, name);
  return values && values.length > 0 ? { t: "shares", name, values: [...new Set(values)] } : FALSE;
}

/** Whether the predicate holds for a row. */
export function rowMatches(p: RowPredicate, row: PredicateRow): boolean {
  switch (p.t) {
    case "const":
      return p.value;
    case "unowned":
      return !row.ownerPrincipal;
    case "owner":
      return !!row.ownerPrincipal && row.ownerPrincipal === p.principal;
    case "shares": {
      if (!row.ownerPrincipal) return false;
      const defined = ownAttribute(row.accessAttributes, p.name);
      return !!defined && defined.some((value) => p.values.includes(value));
    }
    case "idIs":
      return row.id === p.id;
    case "idStartsWith":
      return row.id.startsWith(p.prefix);
    case "qualifiedMatches":
      return regexMatchesAtStart(p.pattern, `${p.type}::${row.id}`);
    case "and":
      return p.of.every((q) => rowMatches(q, row));
    case "or":
      return p.of.some((q) => rowMatches(q, row));
    case "not":
      return !rowMatches(p.of, row);
  }
}

/** Whether a predicate uses a node SQL cannot express (a regex scope), so the service must filter. */
export function needsServiceFilter(p: RowPredicate): boolean {
  if (p.t === "qualifiedMatches") return true;
  if (p.t === "and" || p.t === "or") return p.of.some(needsServiceFilter);
  if (p.t === "not") return needsServiceFilter(p.of);
  return false;
}
