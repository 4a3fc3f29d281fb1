/**
 * Llama Stack's access policy language (0.7), and its decision procedure, exactly: rules are
 * tried in order, the first whose scope and condition match permits or forbids, and no match
 * denies. Pure: no I/O, no transport or storage knowledge.
 */

export const ACTIONS = ["create", "read", "update", "delete"] as const;
export type Action = (typeof ACTIONS)[number];

/** A principal's attributes (`roles`, `teams`, `projects`, `namespaces`, or any other name), each a list of values. */
export type Attributes = Record<string, string[]>;

/** Who asks: a principal and its attributes (null: none recorded), as Llama Stack's `User`. */
export interface User {
  principal: string;
  attributes: Attributes | null;
}

/** What is asked about. `owner` null: unowned (written without authentication). */
export interface ProtectedResource {
  type: string;
  identifier: string;
  owner: User | null;
}

export type Condition =
  | { kind: "user is owner" }
  | { kind: "user is not owner" }
  | { kind: "resource is unowned" }
  | { kind: "user in owners"; name: string }
  | { kind: "user not in owners"; name: string }
  | { kind: "user with value in"; value: string; name: string }
  | { kind: "user with value not in"; value: string; name: string };

export interface Scope {
  /** Unset: any principal. */
  principal?: string;
  actions: Action[];
  /** `type::identifier`, `type::*`, or `regex:PATTERN`; unset: any resource. */
  resource?: string;
}

export interface AccessRule {
  effect: "permit" | "forbid";
  scope: Scope;
  /** All must hold for the rule to apply; unset: no `when`. */
  when?: Condition[];
  /** The rule applies unless all of these hold; only without `when`. */
  unless?: Condition[];
  description?: string;
}

export type AccessPolicy = readonly AccessRule[];

/** What decided: the index of the rule (in the policy as written, or in the preset), or null when no rule matched. */
export interface Decision {
  allowed: boolean;
  rule: number | null;
  /** The rule's description, or "no matching rule". */
  reason: string;
}

export class AccessPolicyError extends Error {
  override readonly name = "AccessPolicyError";
}

/**
 * Llama Stack 0.7's default policy (the one it applies when `access_policy` is empty): a user
 * reaches what an owner sharing one of its roles, teams, projects or namespaces made, what it owns
 * itself, and what no one owns.
 */
export const LLAMA_STACK_DEFAULT_POLICY: AccessPolicy = [
  ...["roles", "teams", "projects", "namespaces"].map(
    (name): AccessRule => ({ effect: "permit", scope: { actions: [...ACTIONS] }, when: [{ kind: "user in owners", name }] }),
  ),
  { effect: "permit", scope: { actions: [...ACTIONS] }, when: [{ kind: "user is owner" }] },
  { effect: "permit", scope: { actions: [...ACTIONS] }, when: [{ kind: "resource is unowned" }] },
];

/** This service's default: a principal reaches only what it owns (files written without authentication are no one's). */
export const OWNER_ONLY_POLICY: AccessPolicy = [
  { effect: "permit", scope: { actions: [...ACTIONS] }, when: [{ kind: "user is owner" }], description: "owner only" },
];

export const POLICY_PRESETS = { owner_only: OWNER_ONLY_POLICY, llama_stack_default: LLAMA_STACK_DEFAULT_POLICY } as const;
export type PolicyPreset = keyof typeof POLICY_PRESETS;

/** Parses one condition as Llama Stack does (words split on whitespace); throws on anything else. */
export function parseCondition(text: string): Condition {
  const w = text.split(/\s+/).filter((word) => word !== "");
  const is = (...words: string[]) => w.length === words.length && words.every((word, i) => word === "*" || word === w[i]);
  if (is("user", "is", "owner")) return { kind: "user is owner" };
  if (is("user", "is", "not", "owner")) return { kind: "user is not owner" };
  if (is("user", "with", "*", "in", "*")) return { kind: "user with value in", value: w[2]!, name: w[4]! };
  if (is("user", "with", "*", "not", "in", "*")) return { kind: "user with value not in", value: w[2]!, name: w[5]! };
  if (is("user", "in", "owners", "*")) return { kind: "user in owners", name: w[3]! };
  if (is("user", "not", "in", "owners", "*")) return { kind: "user not in owners", name: w[4]! };
  if (is("resource", "is", "unowned")) return { kind: "resource is unowned" };
  throw new AccessPolicyError(
    `invalid condition '${text}': expected one of 'user is owner', 'user is not owner', 'resource is unowned', ` +
      `'user in owners <attribute>', 'user not in owners <attribute>', 'user with <value> in <attribute>', 'user with <value> not in <attribute>'`,
  );
}

const RULE_KEYS = new Set(["permit", "forbid", "when", "unless", "description"]);
const SCOPE_KEYS = new Set(["principal", "actions", "resource"]);

/**
 * Validates `server.auth.access_policy` as written in a Llama Stack run config and returns its
 * rules. Errors name the rule (its index and description) and what is wrong with it.
 */
export function parseAccessPolicy(raw: unknown): AccessRule[] {
  if (!Array.isArray(raw)) throw new AccessPolicyError("access_policy must be a list of rules (or the name of a preset)");
  return raw.map((rule, index) => {
    const name = `rule ${index}${isRecord(rule) && typeof rule.description === "string" ? ` ('${rule.description}')` : ""}`;
    try {
      return parseRule(rule);
    } catch (err) {
      throw new AccessPolicyError(`access_policy ${name}: ${(err as Error).message}`);
    }
  });
}

function parseRule(raw: unknown): AccessRule {
  if (!isRecord(raw)) throw new Error("a rule must be a mapping with permit or forbid");
  const unknown = Object.keys(raw).filter((key) => !RULE_KEYS.has(key));
  if (unknown.length > 0) throw new Error(`unknown key ${unknown.map((k) => `'${k}'`).join(", ")}; a rule has permit or forbid, when or unless, description`);
  // Python truthiness, as Llama Stack's validators use it.
  const truthy = (v: unknown) => v !== undefined && v !== null && v !== "" && !(Array.isArray(v) && v.length === 0);
  if (!truthy(raw.permit) && !truthy(raw.forbid)) throw new Error("one of permit or forbid is required");
  if (truthy(raw.permit) && truthy(raw.forbid)) throw new Error("permit and forbid are mutually exclusive");
  if (truthy(raw.when) && truthy(raw.unless)) throw new Error("when and unless are mutually exclusive");
  const effect = truthy(raw.permit) ? "permit" : "forbid";
  const rule: AccessRule = { effect, scope: parseScope(raw[effect], effect) };
  for (const key of ["when", "unless"] as const) {
    const value = raw[key];
    // Llama Stack ignores an empty when or unless (Python truthiness), without parsing it.
    if (!truthy(value)) continue;
    const texts = typeof value === "string" ? [value] : Array.isArray(value) ? value : undefined;
    if (!texts || texts.some((t) => typeof t !== "string")) throw new Error(`${key} must be a condition or a list of conditions`);
    const conditions = (texts as string[]).map((text) => {
      try {
        return parseCondition(text);
      } catch (err) {
        throw new Error(`${key}: ${(err as Error).message}`);
      }
    });
    rule[key] = conditions;
  }
  if (raw.description !== undefined && raw.description !== null) {
    if (typeof raw.description !== "string") throw new Error("description must be a string");
    rule.description = raw.description;
  }
  return rule;
}

function parseScope(raw: unknown, effect: string): Scope {
  if (!isRecord(raw)) throw new Error(`${effect} must be a mapping with actions (and optionally principal, resource)`);
  const unknown = Object.keys(raw).filter((key) => !SCOPE_KEYS.has(key));
  if (unknown.length > 0) throw new Error(`${effect}: unknown key ${unknown.map((k) => `'${k}'`).join(", ")}; a scope has actions, principal, resource`);
  const actions = typeof raw.actions === "string" ? [raw.actions] : raw.actions;
  if (!Array.isArray(actions)) throw new Error(`${effect}.actions is required: a list of ${ACTIONS.join(", ")}`);
  for (const action of actions) {
    if (!ACTIONS.includes(action as Action)) throw new Error(`${effect}.actions: '${String(action)}' is not one of ${ACTIONS.join(", ")}`);
  }
  const scope: Scope = { actions: actions as Action[] };
  for (const key of ["principal", "resource"] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "string") throw new Error(`${effect}.${key} must be a string`);
    if (value !== "") scope[key] = value;
  }
  if (scope.resource?.startsWith("regex:")) {
    try {
      new RegExp(scope.resource.slice(6));
    } catch {
      throw new Error(`${effect}.resource: '${scope.resource}' is not a valid regular expression`);
    }
  }
  return scope;
}

/** Llama Stack's matches_resource: exact, `type::*` (a prefix), or `regex:` (matched at the start). */
export function matchesResource(scope: string, qualified: string): boolean {
  if (scope === qualified) return true;
  if (scope.startsWith("regex:")) return regexMatchesAtStart(scope.slice(6), qualified);
  return scope.endsWith("::*") && qualified.startsWith(scope.slice(0, -1));
}

const regexCache = new Map<string, RegExp | null>();

/** Python's re.match: anchored at the start only. A pattern JavaScript cannot compile never matches. */
export function regexMatchesAtStart(pattern: string, text: string): boolean {
  let re = regexCache.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(`^(?:${pattern})`, "u");
    } catch {
      re = null;
    }
    if (regexCache.size < 1000) regexCache.set(pattern, re);
  }
  return re !== null && re.test(text);
}

function matchesScope(scope: Scope, action: Action, qualified: string, principal: string): boolean {
  if (scope.resource !== undefined && !matchesResource(scope.resource, qualified)) return false;
  if (scope.principal !== undefined && scope.principal !== principal) return false;
  return scope.actions.includes(action);
}

/** One condition on a resource and a user, as Llama Stack's conditions.py decides it. */
export function conditionHolds(condition: Condition, resource: ProtectedResource, user: User): boolean {
  switch (condition.kind) {
    case "user is owner":
      return resource.owner !== null && resource.owner.principal === user.principal;
    case "user is not owner":
      return resource.owner === null || resource.owner.principal !== user.principal;
    case "resource is unowned":
      return resource.owner === null;
    case "user in owners":
      return inOwners(condition.name, resource, user);
    case "user not in owners":
      return !inOwners(condition.name, resource, user);
    case "user with value in":
      return withValue(condition.value, condition.name, user);
    case "user with value not in":
      return !withValue(condition.value, condition.name, user);
  }
}

function inOwners(name: string, resource: ProtectedResource, user: User): boolean {
  const defined = ownAttribute(resource.owner?.attributes, name);
  if (!defined || defined.length === 0) return false;
  const values = ownAttribute(user.attributes, name);
  if (!values || values.length === 0) return false;
  return defined.some((value) => values.includes(value));
}

function withValue(value: string, name: string, user: User): boolean {
  return ownAttribute(user.attributes, name)?.includes(value) ?? false;
}

/** attributes[name], never an inherited property ("constructor", "__proto__"). */
export function ownAttribute(attributes: Attributes | null | undefined, name: string): string[] | undefined {
  if (!attributes || !Object.prototype.hasOwnProperty.call(attributes, name)) return undefined;
  const values = attributes[name];
  return Array.isArray(values) ? values : undefined;
}

/** Whether a rule applies: its scope matches, and its when holds (or its unless does not). */
export function ruleApplies(rule: AccessRule, action: Action, resource: ProtectedResource, user: User): boolean {
  if (!matchesScope(rule.scope, action, `${resource.type}::${resource.identifier}`, user.principal)) return false;
  if (rule.when) return rule.when.every((c) => conditionHolds(c, resource, user));
  if (rule.unless) return !rule.unless.every((c) => conditionHolds(c, resource, user));
  return true;
}

/**
 * Llama Stack's is_action_allowed. `user` null means authentication is off: everything is allowed.
 * An empty policy is Llama Stack's default policy, as there.
 */
export function decide(policy: AccessPolicy, action: Action, resource: ProtectedResource, user: User | null): Decision {
  if (user === null) return { allowed: true, rule: null, reason: "no auth" };
  const rules = policy.length === 0 ? LLAMA_STACK_DEFAULT_POLICY : policy;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (ruleApplies(rule, action, resource, user)) return { allowed: rule.effect === "permit", rule: i, reason: rule.description ?? "" };
  }
  return { allowed: false, rule: null, reason: "no matching rule" };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
