import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attributesFromClaims, DEFAULT_CLAIMS_MAPPING } from "../../src/auth/jwt.js";
import { ApiKeyVerifier } from "../../src/auth/api-keys.js";
import { BearerAuthenticator } from "../../src/auth/authenticator.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { AccessControl, FILE_RESOURCE_TYPE, type Refusal } from "../../src/files/access-control.js";
import {
  AccessPolicyError,
  decide,
  LLAMA_STACK_DEFAULT_POLICY,
  OWNER_ONLY_POLICY,
  parseAccessPolicy,
  type User,
} from "../../src/files/access-policy.js";
import { FilesService } from "../../src/files/files-service.js";
import { compileRowPredicate, needsServiceFilter } from "../../src/files/row-predicate.js";
import { predicateToSql } from "../../src/metadata/access-sql.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { bodyOf, rejection } from "../support/test-helpers.js";

const alice: User = { principal: "alice", attributes: { teams: ["ml"] } };
const bob: User = { principal: "bob", attributes: { teams: ["ml"], roles: ["bob"] } };
const carol: User = { principal: "carol", attributes: { teams: ["ops"] } };
const file = (owner: User | null, id = "file-1") => ({ type: FILE_RESOURCE_TYPE, identifier: id, owner });

describe("parseAccessPolicy", () => {
  it("accepts Llama Stack's documented examples verbatim", () => {
    const rules = parseAccessPolicy([
      { permit: { principal: "user-1", actions: ["create", "read", "delete"], resource: "model::*" }, description: "user-1 has full access to all models" },
      { permit: { principal: "user-2", actions: ["read"], resource: "model::model-1" }, description: "user-2 has read access to model-1 only" },
      { permit: { actions: ["read"] }, when: "user in owners teams", description: "any user has read access to any resource created by a member of their team" },
      { forbid: { actions: ["create", "read", "delete"], resource: "vector_db::*" }, unless: "user with admin in roles", description: "only user with admin role can use vector_db resources" },
    ]);
    expect(rules).toHaveLength(4);
    expect(rules[3]).toEqual({
      effect: "forbid",
      scope: { actions: ["create", "read", "delete"], resource: "vector_db::*" },
      unless: [{ kind: "user with value in", value: "admin", name: "roles" }],
      description: "only user with admin role can use vector_db resources",
    });
  });

  it("names the rule and the bad condition", () => {
    const bad = (policy: unknown) => {
      try {
        parseAccessPolicy(policy);
      } catch (err) {
        expect(err).toBeInstanceOf(AccessPolicyError);
        return (err as Error).message;
      }
      throw new Error("accepted");
    };
    expect(bad([{ permit: { actions: ["read"] } }, { permit: { actions: ["read"] }, when: ["user is owner", "user is the owner"], description: "owners" }])).toBe(
      "access_policy rule 1 ('owners'): when: invalid condition 'user is the owner': expected one of 'user is owner', 'user is not owner', 'resource is unowned', 'user in owners <attribute>', 'user not in owners <attribute>', 'user with <value> in <attribute>', 'user with <value> not in <attribute>'",
    );
    expect(bad([{ permit: { actions: ["read"] }, forbid: { actions: ["read"] } }])).toMatch(/^access_policy rule 0: permit and forbid are mutually exclusive/);
    expect(bad([{ permit: { actions: ["read"] }, when: "user is owner", unless: "resource is unowned" }])).toMatch(/rule 0: when and unless are mutually exclusive/);
    expect(bad([{ description: "nothing" }])).toMatch(/rule 0 \('nothing'\): one of permit or forbid is required/);
    expect(bad([{ permit: { actions: ["list"] } }])).toMatch(/rule 0: permit.actions: 'list' is not one of create, read, update, delete/);
    expect(bad([{ permit: { actions: ["read"] }, unles: "user is owner" }])).toMatch(/rule 0: unknown key 'unles'/);
    expect(bad([{ permit: { actions: ["read"], resource: "regex:(" } }])).toMatch(/not a valid regular expression/);
    expect(bad({ permit: {} })).toMatch(/must be a list of rules/);
  });
});

describe("the presets", () => {
  it("owner_only: only the owner, never unowned files", () => {
    expect(decide(OWNER_ONLY_POLICY, "read", file(alice), alice).allowed).toBe(true);
    expect(decide(OWNER_ONLY_POLICY, "read", file(alice), bob).allowed).toBe(false);
    expect(decide(OWNER_ONLY_POLICY, "read", file(null), bob).allowed).toBe(false);
    expect(decide(OWNER_ONLY_POLICY, "delete", file(alice), null).allowed).toBe(true);
  });

  it("llama_stack_default (and an empty policy): shared attribute values, own files and unowned files", () => {
    for (const policy of [LLAMA_STACK_DEFAULT_POLICY, []]) {
      expect(decide(policy, "read", file(alice), bob)).toEqual({ allowed: true, rule: 1, reason: "" }); // teams
      expect(decide(policy, "delete", file(alice), carol).allowed).toBe(false);
      expect(decide(policy, "read", file(null), carol)).toEqual({ allowed: true, rule: 5, reason: "" });
      expect(decide(policy, "read", file({ principal: "carol", attributes: null }), carol).allowed).toBe(true);
    }
  });
});

describe("compiled row predicates", () => {
  it("owner_only is one owner comparison, and the preset a handful of SQL-expressible conditions", () => {
    expect(compileRowPredicate(OWNER_ONLY_POLICY, "read", FILE_RESOURCE_TYPE, alice)).toEqual({ t: "owner", principal: "alice" });
    const preset = compileRowPredicate(LLAMA_STACK_DEFAULT_POLICY, "read", FILE_RESOURCE_TYPE, bob);
    expect(preset).toEqual({
      t: "or",
      of: [
        { t: "shares", name: "roles", values: ["bob"] },
        { t: "shares", name: "teams", values: ["ml"] },
        { t: "owner", principal: "bob" },
        { t: "unowned" },
      ],
    });
    expect(needsServiceFilter(preset)).toBe(false);
    // The owner and unowned tests come first in SQL, so a row they admit never has its JSON parsed.
    const sql = predicateToSql(preset, "sqlite");
    expect(sql.params).toEqual(["bob", '"bob"', "roles", "bob", '"ml"', "teams", "ml"]);
    expect(sql.sql.indexOf('"owner_principal" = ?')).toBeLessThan(sql.sql.indexOf("json_each"));
  });

  it("a regex resource scope is filtered by the service", () => {
    const policy = parseAccessPolicy([{ permit: { actions: ["read"], resource: `regex:${FILE_RESOURCE_TYPE}::file-a` } }]);
    expect(needsServiceFilter(compileRowPredicate(policy, "read", FILE_RESOURCE_TYPE, alice))).toBe(true);
  });
});

describe("principals' attributes", () => {
  it("claims_mapping defaults to Llama Stack's, for string and list claims", () => {
    expect(DEFAULT_CLAIMS_MAPPING).toEqual({ sub: "roles", username: "roles", groups: "teams", team: "teams", project: "projects", tenant: "namespaces", namespace: "namespaces" });
    expect(attributesFromClaims({ sub: "dan", groups: ["ml", "ops"], team: "red blue", project: "p1", tenant: 7, aud: "x" }, DEFAULT_CLAIMS_MAPPING)).toEqual({
      roles: ["dan"],
      teams: ["ml", "ops", "red", "blue"],
      projects: ["p1"],
    });
    expect(attributesFromClaims({ realm: { roles: ["admin"] }, "a.b": "literal" }, { "realm.roles": "roles", "a.b": "teams" })).toEqual({ roles: ["admin"], teams: ["literal"] });
  });

  it("API keys carry the attributes their config gives", async () => {
    const auth = new BearerAuthenticator([new ApiKeyVerifier([{ key: "sk-test-0123456789abcdef", principal: "ann", attributes: { teams: ["ml"] } }])]);
    expect(await auth.identify("Bearer sk-test-0123456789abcdef")).toEqual({ principal: "ann", attributes: { teams: ["ml"] } });
    expect(await auth.authenticate("Bearer sk-test-0123456789abcdef")).toBe("ann");
  });
});

describe("server.auth.access_policy in the config", () => {
  const load = (policy: string) => {
    const dir = mkdtempSync(join(tmpdir(), "files-policy-"));
    const path = join(dir, "config.yaml");
    writeFileSync(
      path,
      `provider_type: inline::localfs\nconfig: { storage_dir: ${dir} }\nserver:\n  auth:\n    api_keys: [{ key: sk-test-0123456789abcdef, principal: ann, attributes: { teams: [ml] } }]\n${policy}`,
    );
    return loadConfig({ configPath: path, env: {} });
  };

  it("defaults to owner_only; takes the preset name or Llama Stack's rules", () => {
    expect(load("").auth!.accessPolicy).toBeUndefined(); // the app's default: owner_only
    expect(load("    access_policy: owner_only\n").auth).toMatchObject({ accessPolicy: OWNER_ONLY_POLICY, accessPolicyName: "owner_only" });
    expect(load("    access_policy: llama_stack_default\n").auth).toMatchObject({ accessPolicy: LLAMA_STACK_DEFAULT_POLICY, accessPolicyName: "llama_stack_default" });
    expect(load("    access_policy: []\n").auth!.accessPolicy).toEqual([]);
    const custom = load("    access_policy:\n      - permit: { actions: [read] }\n        when: user in owners teams\n        description: teammates read\n").auth!;
    expect(custom.accessPolicyName).toBe("custom");
    expect(custom.accessPolicy![0]).toMatchObject({ effect: "permit", description: "teammates read" });
    expect(custom.apiKeys[0]!.attributes).toEqual({ teams: ["ml"] });
  });

  it("refuses a bad rule at start, naming it", () => {
    expect(() => load("    access_policy:\n      - permit: { actions: [read] }\n        when: user in team ml\n")).toThrow(ConfigError);
    expect(() => load("    access_policy:\n      - permit: { actions: [read] }\n        when: user in team ml\n")).toThrow(
      /server\.auth\.access_policy rule 0: when: invalid condition 'user in team ml'/,
    );
    expect(() => load("    access_policy: everyone\n")).toThrow(/access_policy must be "owner_only", "llama_stack_default" or a list of rules/);
  });
});

describe("FilesService under a policy", () => {
  const T = 1_700_000_000;
  function service(policy: Parameters<typeof parseAccessPolicy>[0]) {
    const refusals: Refusal[] = [];
    const repository = new MemoryFileRepository();
    let now = T;
    const files = new FilesService({
      store: new MemoryObjectStore(),
      repository,
      clock: { now: () => now++ },
      maxFileBytes: 1 << 20,
      access: new AccessControl(parseAccessPolicy(policy), (r) => refusals.push(r)),
    });
    const upload = (owner: User, name: string) => files.upload({ filename: name, purpose: "assistants" }, bodyOf("x"), { owner });
    return { files, repository, refusals, upload };
  }

  it("records the owner's attributes, refuses a hidden read as not found and a refused delete as permission denied, and reports each refusal", async () => {
    const { files, refusals, upload } = service([
      { permit: { actions: ["create", "read", "update", "delete"] }, when: "user is owner" },
      { permit: { actions: ["read"] }, when: "user in owners teams", description: "teammates read" },
    ]);
    const f = await upload(alice, "a.txt");
    expect(f.accessAttributes).toEqual({ teams: ["ml"] });
    expect((await files.get(f.id, bob)).id).toBe(f.id);
    expect((await rejection(files.get(f.id, carol))).message).toMatch(/No such file/);
    const denied = await files.delete(f.id, bob).catch((e: unknown) => e as { code: string });
    expect(denied).toMatchObject({ code: "permission_denied" });
    expect(refusals).toEqual([
      { principal: "carol", action: "read", resourceType: FILE_RESOURCE_TYPE, resourceId: f.id, rule: null, reason: "no matching rule" },
      { principal: "bob", action: "delete", resourceType: FILE_RESOURCE_TYPE, resourceId: f.id, rule: null, reason: "no matching rule" },
    ]);
  });

  it("refuses create with permission denied before any byte is stored", async () => {
    const { files, repository } = service([{ forbid: { actions: ["create"] }, unless: "user with writer in roles" }, { permit: { actions: ["read"] } }]);
    const err = await files.upload({ filename: "x", purpose: "assistants" }, bodyOf("x"), { owner: alice }).catch((e: unknown) => e as { code: string });
    expect(err).toMatchObject({ code: "permission_denied" });
    expect(repository.rows.size).toBe(0);
  });

  it("pages exactly when the service filters (a regex scope): small pages, cursors, nothing skipped or repeated", async () => {
    const { files, upload } = service([
      { permit: { actions: ["create"] } },
      { permit: { actions: ["read"], resource: `regex:${FILE_RESOURCE_TYPE}::file-[0-7]` } },
    ]);
    const ids: string[] = [];
    for (let i = 0; i < 1200; i++) ids.push((await upload(alice, `f${i}`)).id);
    const visible = ids.filter((id) => /^file-[0-7]/.test(id)).reverse();
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await files.list({ limit: 7, after, owner: carol });
      seen.push(...page.data.map((f) => f.id));
      if (!page.hasMore) break;
      after = page.lastId!;
    }
    expect(seen).toEqual(visible);
    const hidden = ids.find((id) => !/^file-[0-7]/.test(id))!;
    expect((await rejection(files.list({ after: hidden, owner: carol }))).message).toMatch(/after: no such file/);
  });
});
