/**
 * Differential test: this service's access policy against Llama Stack 0.7.3's own
 * is_action_allowed, on thousands of seeded random policies, users, resources and actions.
 * Each case is decided by decide(), by the compiled row predicate, and (for file reads) by the
 * SQL the metadata adapter runs on SQLite and PostgreSQL; all must agree with the oracle.
 * FILES_DIFF_SEED=<n> replays a run; the seed and the first disagreement are printed on failure.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { rng, type Rng } from "../support/seeded-rng.js";
import { findPython, ensureLlamaStackVenv } from "../../bench/python.js";
import { FILE_RESOURCE_TYPE, UPLOAD_RESOURCE_TYPE } from "../../src/files/access-control.js";
import { ACTIONS, decide, parseAccessPolicy, type Action, type Attributes, type ProtectedResource, type User } from "../../src/files/access-policy.js";
import { compileRowPredicate, needsServiceFilter, rowMatches } from "../../src/files/row-predicate.js";
import type { FileRecord } from "../../src/files/ports.js";
import { openFileRepository, type MetadataStoreOptions } from "../../src/metadata/open.js";
import { venvPython } from "../support/cached-install.js";
import { createTestDatabase, tempDir } from "../support/env.js";

const SEED = Number(process.env.FILES_DIFF_SEED ?? Math.floor(Math.random() * 2 ** 31));
const POLICIES = Number(process.env.FILES_DIFF_POLICIES ?? 3000);
const CASES_PER_POLICY = 8;


const NAMES = ["roles", "teams", "projects", "namespaces", "groups"] as const;
const VALUES = ["a", "b", "c", "ml", "alice"] as const;
const PRINCIPALS = ["alice", "bob", "carol"] as const;
const IDS = ["file-aaa", "file-abc", "file-b01", "upload_x1"] as const;
const RESOURCE_SCOPES = [
  `${FILE_RESOURCE_TYPE}::*`,
  "sql_record::*",
  "sql_record::openai_f::*",
  `${FILE_RESOURCE_TYPE}::file-abc`,
  `${UPLOAD_RESOURCE_TYPE}::*`,
  `${FILE_RESOURCE_TYPE}::file-a::*`,
  "file::*",
  "",
  `regex:${FILE_RESOURCE_TYPE}::file-a`,
  "regex:sql_record::openai_(files|uploads)::.*b",
];

function attributes(r: Rng): Attributes | null {
  if (r.chance(0.2)) return null;
  const out: Attributes = {};
  for (const name of r.subset(NAMES)) out[name] = r.subset(VALUES);
  return out;
}

function condition(r: Rng): string {
  switch (r.int(7)) {
    case 0:
      return "user is owner";
    case 1:
      return "user is not owner";
    case 2:
      return "resource is unowned";
    case 3:
      return `user in owners ${r.pick(NAMES)}`;
    case 4:
      return `user not in owners ${r.pick(NAMES)}`;
    case 5:
      return `user with ${r.pick(VALUES)} in ${r.pick(NAMES)}`;
    default:
      return `user with ${r.pick(VALUES)} not in ${r.pick(NAMES)}`;
  }
}

function conditions(r: Rng): string | string[] {
  const n = r.int(3);
  const list = Array.from({ length: n }, () => condition(r));
  return n === 1 && r.chance(0.5) ? list[0]! : list;
}

function rule(r: Rng): Record<string, unknown> {
  const actions = r.chance(0.2) ? r.pick(ACTIONS) : r.subset(ACTIONS);
  const scope: Record<string, unknown> = { actions };
  if (r.chance(0.3)) scope.principal = r.pick([...PRINCIPALS, ""]);
  if (r.chance(0.5)) scope.resource = r.pick(RESOURCE_SCOPES);
  const out: Record<string, unknown> = { [r.chance(0.6) ? "permit" : "forbid"]: scope };
  const kind = r.int(3);
  if (kind === 1) out.when = conditions(r);
  if (kind === 2) out.unless = conditions(r);
  if (r.chance(0.3)) out.description = `rule ${r.int(100)}`;
  return out;
}

/** Rules both sides must refuse (or, where Llama Stack is lenient, accept): mistakes a config may hold. */
function oddRule(r: Rng): Record<string, unknown> {
  switch (r.int(6)) {
    case 0:
      return { permit: { actions: ["read"] }, forbid: { actions: ["read"] } };
    case 1:
      return { permit: { actions: ["read"] }, when: "user is owner", unless: "resource is unowned" };
    case 2:
      return { permit: { actions: ["read"] }, when: `user is ${r.pick(["the owner", "owner of", "not the owner"])}` };
    case 3:
      return { forbid: { actions: [r.pick(["list", "write", "READ"])] } };
    case 4:
      return { permit: { actions: ["read"] }, when: "", unless: "user is owner" };
    default:
      return { permit: { actions: ["delete"] }, when: [], description: "empty when" };
  }
}

function user(r: Rng): User | null {
  return r.chance(0.03) ? null : { principal: r.pick(PRINCIPALS), attributes: attributes(r) };
}

function resource(r: Rng, type = r.chance(0.8) ? FILE_RESOURCE_TYPE : UPLOAD_RESOURCE_TYPE): ProtectedResource {
  return {
    type,
    identifier: r.pick(IDS),
    owner: r.chance(0.15) ? null : { principal: r.pick(PRINCIPALS), attributes: attributes(r) },
  };
}

interface Case {
  policy: number;
  action: Action;
  resource: ProtectedResource;
  user: User | null;
}

interface OracleAnswer {
  accepted: boolean[];
  errors: (string | null)[];
  decisions: (boolean | null)[];
}

async function oracle(python: string, policies: unknown[][], cases: Case[]): Promise<OracleAnswer> {
  const script = path.resolve(import.meta.dirname, "../support/llama-stack-oracle.py");
  const child = spawn(python, [script], { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const done = new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? -1));
  });
  child.stdin.end(JSON.stringify({ policies, cases: cases.map((c) => [c.policy, c.action, c.resource, c.user]) }));
  const code = await done;
  if (code !== 0) throw new Error(`the oracle failed (${code}): ${Buffer.concat(err).toString().slice(-2000)}`);
  return JSON.parse(Buffer.concat(out).toString()) as OracleAnswer;
}

async function llamaStackPython(): Promise<string> {
  const found = await findPython();
  if ("problems" in found) throw new Error(`no Python >= 3.12 for llama-stack: ${found.problems.join("; ")}`);
  return venvPython(await ensureLlamaStackVenv(found));
}

function generate(seed: number) {
  const r = rng(seed);
  const policies: unknown[][] = [];
  const cases: Case[] = [];
  for (let p = 0; p < POLICIES; p++) {
    policies.push(r.chance(0.05) ? [] : Array.from({ length: 1 + r.int(5) }, () => (r.chance(0.02) ? oddRule(r) : rule(r))));
    for (let i = 0; i < CASES_PER_POLICY; i++) cases.push({ policy: p, action: r.pick(ACTIONS), resource: resource(r), user: user(r) });
  }
  return { policies, cases };
}

const show = (x: unknown) => JSON.stringify(x, null, 1).replace(/\n\s*/g, " ");

describe(`the access policy against Llama Stack 0.7.3's is_action_allowed (seed ${SEED})`, () => {
  let answer: OracleAnswer;
  const { policies, cases } = generate(SEED);

  it(`decides ${POLICIES} random policies x ${CASES_PER_POLICY} cases exactly as Llama Stack does`, { timeout: 900_000 }, async () => {
    answer = await oracle(await llamaStackPython(), policies, cases);
    const parsed = policies.map((raw, i) => {
      try {
        return parseAccessPolicy(raw);
      } catch (err) {
        if (answer.accepted[i]) throw new Error(`seed ${SEED}: policy ${i} ${show(raw)} is accepted by Llama Stack but refused here: ${(err as Error).message}`);
        return undefined;
      }
    });
    let checked = 0;
    for (const [i, c] of cases.entries()) {
      const policy = parsed[c.policy];
      if (!answer.accepted[c.policy]) {
        expect(policy, `seed ${SEED}: policy ${c.policy} ${show(policies[c.policy])} is refused by Llama Stack (${answer.errors[c.policy]}) but accepted here`).toBeUndefined();
        continue;
      }
      const expected = answer.decisions[i];
      const byDecide = decide(policy!, c.action, c.resource, c.user).allowed;
      const row = { id: c.resource.identifier, ownerPrincipal: c.resource.owner?.principal ?? null, accessAttributes: c.resource.owner?.attributes ?? null };
      const byPredicate = rowMatches(compileRowPredicate(policy!, c.action, c.resource.type, c.user), row);
      if (byDecide !== expected || byPredicate !== expected) {
        throw new Error(
          `seed ${SEED}: first disagreement at case ${i}: Llama Stack says ${expected}, decide() ${byDecide}, the row predicate ${byPredicate}\n` +
            `  policy: ${show(policies[c.policy])}\n  action: ${c.action}\n  resource: ${show(c.resource)}\n  user: ${show(c.user)}`,
        );
      }
      checked++;
    }
    console.log(`[differential] seed ${SEED}: ${checked} decisions agree with Llama Stack (${policies.length} policies, ${answer.accepted.filter(Boolean).length} accepted by both)`);
    expect(checked).toBeGreaterThan(POLICIES * CASES_PER_POLICY * 0.9);
  });

  // The SQL the adapter runs: every file row of a random table, listed for a random user, must be
  // exactly the rows the oracle lets that user read.
  const backends: Array<[string, () => Promise<MetadataStoreOptions>]> = [
    ["SQLite", async () => ({ type: "sqlite", dbPath: path.join(await tempDir("diff-sql"), "files.db") })],
    ["PostgreSQL", async () => ({ type: "postgres", url: await createTestDatabase("diff-sql") })],
  ];
  for (const [name, options] of backends) {
    it(`lists on ${name} exactly the files Llama Stack lets each user read`, { timeout: 900_000 }, async () => {
      const r = rng(SEED ^ 0x5eed);
      const repository = await openFileRepository(await options());
      try {
        const T = 1_700_000_000;
        const rows: FileRecord[] = Array.from({ length: 60 }, (_, i) => {
          const res = resource(r, FILE_RESOURCE_TYPE);
          const record: FileRecord = {
            id: `file-${i.toString(16).padStart(3, "0")}${r.pick(["a", "b", "ab"])}`,
            filename: "f.txt",
            purpose: "assistants",
            bytes: 1,
            createdAt: T + r.int(5),
            expiresAt: null,
            mimeType: "text/plain",
            sha256: "",
            storageKey: `k${i}`,
            status: "processed",
            // Rows written without authentication: null here, '' from Llama Stack.
            ownerPrincipal: res.owner?.principal ?? r.pick([null, ""]),
          };
          if (res.owner?.attributes) record.accessAttributes = res.owner.attributes;
          return record;
        });
        for (const row of rows) await repository.insert(row);
        // Rows from before the column existed hold SQL NULL, not JSON null: some of each.
        const connection = (repository as unknown as { orm: { em: { getConnection(): { execute(sql: string): Promise<unknown> } } } }).orm.em.getConnection();
        await connection.execute(`update openai_files set access_attributes = null where id like '%b'`);
        for (const row of rows) if (row.id.endsWith("b")) delete row.accessAttributes;
        const trials = Array.from({ length: 150 }, () => ({ policy: r.int(POLICIES), user: user(r) }));
        const cases: Case[] = trials.flatMap((t) =>
          rows.map((row) => ({
            policy: t.policy,
            action: "read" as const,
            resource: {
              type: FILE_RESOURCE_TYPE,
              identifier: row.id,
              owner: row.ownerPrincipal ? { principal: row.ownerPrincipal, attributes: row.accessAttributes ?? null } : null,
            },
            user: t.user,
          })),
        );
        const sqlAnswer = await oracle(await llamaStackPython(), policies, cases);
        let compared = 0;
        for (const [t, trial] of trials.entries()) {
          if (!sqlAnswer.accepted[trial.policy]) continue;
          const policy = parseAccessPolicy(policies[trial.policy]);
          const visible = compileRowPredicate(policy, "read", FILE_RESOURCE_TYPE, trial.user);
          if (needsServiceFilter(visible)) continue;
          const listed = await repository.list({ limit: 1000, order: "asc", now: T + 10, visible });
          const got = listed.map((f) => f.id).sort();
          const want = rows.filter((_, i) => sqlAnswer.decisions[t * rows.length + i]).map((f) => f.id).sort();
          expect(got, `seed ${SEED}: ${name} lists other files than Llama Stack allows for policy ${show(policies[trial.policy])}, user ${show(trial.user)}`).toEqual(want);
          compared++;
        }
        console.log(`[differential] seed ${SEED}: ${compared} listings on ${name} match Llama Stack's decisions over ${rows.length} rows`);
        expect(compared).toBeGreaterThan(50);
      } finally {
        await repository.close();
      }
    });
  }
});
