import { decide, OWNER_ONLY_POLICY, type AccessPolicy, type Action, type Attributes, type ProtectedResource, type User } from "./access-policy.js";
import { FilesError, notFound } from "./errors.js";
import { compileRowPredicate, type PredicateRow, type RowPredicate } from "./row-predicate.js";

/**
 * Resource types, as Llama Stack's authorized SQL store names its rows (`sql_record::<table>`),
 * so that a policy written for Llama Stack's files (`resource: sql_record::openai_files::*`)
 * means the same here. Uploads have no Llama Stack counterpart; they get their table's name too.
 */
export const FILE_RESOURCE_TYPE = "sql_record::openai_files";
export const UPLOAD_RESOURCE_TYPE = "sql_record::openai_uploads";

/** Who asks, as the core takes it: a user, a bare principal name (no attributes), or null (authentication off). */
export type Caller = User | string | null;

export const asUser = (caller: Caller | undefined): User | null =>
  caller === undefined || caller === null ? null : typeof caller === "string" ? { principal: caller, attributes: null } : caller;

/** A refused action, for the audit log. */
export interface Refusal {
  principal: string;
  action: Action;
  resourceType: string;
  resourceId: string;
  /** Index of the deciding rule in the configured policy (or preset), null when no rule matched. */
  rule: number | null;
  reason: string;
}

/** A stored row's owner as a protected resource sees it: '' and null are no owner, as in Llama Stack. */
export function resourceOf(type: string, row: PredicateRow): ProtectedResource {
  return {
    type,
    identifier: row.id,
    owner: row.ownerPrincipal ? { principal: row.ownerPrincipal, attributes: row.accessAttributes ?? null } : null,
  };
}

/** The attributes recorded with a row its caller creates: the caller's, or none. */
export const attributesOf = (caller: Caller | undefined): Attributes | null => asUser(caller)?.attributes ?? null;

/**
 * The access policy as the core uses it: every operation asks `check` (or filters with
 * `visibleRows`), and every refusal is reported once to `onRefusal`.
 */
export class AccessControl {
  constructor(
    readonly policy: AccessPolicy = OWNER_ONLY_POLICY,
    private readonly onRefusal?: (refusal: Refusal) => void,
  ) {}

  allows(action: Action, type: string, row: PredicateRow, caller: Caller | undefined): boolean {
    const user = asUser(caller);
    const decision = decide(this.policy, action, resourceOf(type, row), user);
    if (!decision.allowed && user) {
      this.onRefusal?.({
        principal: user.principal,
        action,
        resourceType: type,
        resourceId: row.id,
        rule: decision.rule,
        reason: decision.reason,
      });
    }
    return decision.allowed;
  }

  /** A read: refused is "not found", exactly like a missing id. */
  checkRead(type: string, row: PredicateRow, caller: Caller | undefined, param: string, what: string): void {
    if (!this.allows("read", type, row, caller)) throw notFound(row.id, param, what);
  }

  /** Anything but a read, on something the caller may see (or is creating): refused is "permission denied". */
  checkWrite(action: Exclude<Action, "read">, type: string, row: PredicateRow, caller: Caller | undefined, what: string): void {
    if (!this.allows(action, type, row, caller)) {
      throw new FilesError("permission_denied", `The access policy does not allow '${action}' on ${what} '${row.id}'`);
    }
  }

  /** The rows `caller` may read, as a predicate for the repository. */
  visibleRows(type: string, caller: Caller | undefined): RowPredicate {
    return compileRowPredicate(this.policy, "read", type, asUser(caller));
  }
}
