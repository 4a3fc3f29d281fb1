import * as path from "node:path";
import { MikroORM } from "@mikro-orm/core";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { SqliteDriver } from "@mikro-orm/sqlite";
import { describe, expect, it } from "vitest";
import { FILE_RESOURCE_TYPE } from "../../src/files/access-control.js";
import { LLAMA_STACK_DEFAULT_POLICY } from "../../src/files/access-policy.js";
import { compileRowPredicate } from "../../src/files/row-predicate.js";
import { openFileRepository, type MetadataStoreOptions } from "../../src/metadata/open.js";
import { fileRepositoryContract, record } from "../contract/file-repository.contract.js";
import { createTestDatabase, tempDir } from "../support/env.js";

const T = 1_700_000_000;

async function sqliteOptions(label: string): Promise<MetadataStoreOptions> {
  // A parent directory that does not exist yet: openFileRepository creates it.
  return { type: "sqlite", dbPath: path.join(await tempDir(label), "nested", "dir", "files.db") };
}

async function pgOptions(label: string): Promise<MetadataStoreOptions> {
  return { type: "postgres", url: await createTestDatabase(label) };
}

const backends = [
  ["SQLite", sqliteOptions],
  ["PostgreSQL", pgOptions],
] as const;

/** Runs `work` on a bare ORM connection, outside the repository (to see or set up tables as other tools do). */
async function withConnection<T>(options: MetadataStoreOptions, work: (orm: MikroORM) => Promise<T>): Promise<T> {
  const quiet = { entities: [], discovery: { warnWhenNoEntities: false } };
  const orm =
    options.type === "sqlite"
      ? await MikroORM.init({ ...quiet, driver: SqliteDriver, dbName: options.dbPath })
      : await MikroORM.init({ ...quiet, driver: PostgreSqlDriver, clientUrl: options.url });
  try {
    return await work(orm);
  } finally {
    await orm.close(true);
  }
}

/** Runs raw SQL outside the repository (to set up a table the way another tool left it). */
async function rawSql(options: MetadataStoreOptions, statements: string[]): Promise<void> {
  await withConnection(options, async (orm) => {
    for (const sql of statements) await orm.em.getConnection().execute(sql);
  });
}

/** Rows of a raw query, numbers as numbers (pg returns bigint as strings). */
async function rawRows(options: MetadataStoreOptions, sql: string): Promise<Record<string, unknown>[]> {
  return withConnection(options, async (orm) => {
    const rows = await orm.em.getConnection().execute<Record<string, unknown>[]>(sql);
    return rows.map((row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, /^\d+$/.test(String(v)) && k !== "id" ? Number(v) : v])));
  });
}

for (const [name, options] of backends) {
  fileRepositoryContract(name, async () => openFileRepository(await options(`contract ${name}`)));

  describe(`openFileRepository on ${name}`, () => {
    it("reopens an already-migrated database and keeps its data across restarts", async () => {
      const opts = await options(`restart ${name}`);
      const a = record({ bytes: 5 * 1024 ** 3, expiresAt: T + 60 });
      const b = record({ createdAt: T + 1, ownerPrincipal: "user:bob" });

      const first = await openFileRepository(opts);
      await first.insert(a);
      await first.close();

      const second = await openFileRepository(opts); // migrations already applied
      await second.insert(b);
      await second.ping();
      await second.close();

      const third = await openFileRepository(opts);
      try {
        expect(await third.findById(a.id, T)).toEqual(a);
        expect(await third.list({ limit: 10, order: "asc", now: T })).toEqual([a, b]);
      } finally {
        await third.close();
      }
    });

    it("adopts an openai_files table created by Llama Stack", async () => {
      const opts = await options(`llama ${name}`);
      // The shape Llama Stack's SQLAlchemy store creates: INTEGER (int4 on PostgreSQL) columns.
      await rawSql(opts, [
        `create table openai_files (id varchar not null, filename varchar, purpose varchar, bytes integer,
          created_at integer, expires_at integer, owner_principal varchar, access_attributes json, primary key (id))`,
        `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at)
          values ('file-${"c".repeat(32)}', 'old.txt', 'assistants', 42, ${T - 10}, ${T + 3600})`,
      ]);
      const repo = await openFileRepository(opts);
      try {
        const legacy = await repo.findById(`file-${"c".repeat(32)}`, T);
        expect(legacy).toEqual({
          id: `file-${"c".repeat(32)}`,
          filename: "old.txt",
          purpose: "assistants",
          bytes: 42,
          createdAt: T - 10,
          expiresAt: T + 3600,
          mimeType: "application/octet-stream",
          sha256: "",
          storageKey: `file-${"c".repeat(32)}`, // Llama Stack keeps objects at the bucket root under the id
          status: "processed",
          ownerPrincipal: null,
        });
        const big = record({ bytes: 8 * 1024 ** 3 });
        await repo.insert(big);
        expect(await repo.findById(big.id, T)).toEqual(big);
      } finally {
        await repo.close();
      }
    });

    it("keeps openai_file_access_values in step with the rows, whoever writes them, and fills it from rows already there", async () => {
      const opts = await options(`access values ${name}`);
      const id = (c: string) => `file-${c.repeat(32)}`;
      const llamaRow = (c: string, owner: string, attrs: string) =>
        `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, owner_principal, access_attributes)
          values ('${id(c)}', 'x.txt', 'assistants', 1, ${T - 5}, ${T + 3600}, '${owner}', '${attrs}')`;
      // Rows Llama Stack wrote before this service first opened the database.
      await rawSql(opts, [
        `create table openai_files (id varchar not null, filename varchar, purpose varchar, bytes integer,
          created_at integer, expires_at integer, owner_principal varchar, access_attributes json, primary key (id))`,
        llamaRow("a", "ann", `{"roles": ["ann"], "teams": ["ml", "ops"]}`),
        llamaRow("b", "ben", `{"teams": "ml", "projects": [1, "p1"]}`), // a string, not a list; a number in a list
        llamaRow("c", "", "null"),
      ]);
      const values = async () =>
        (await rawRows(opts, `select name, value, created_at, file_id from openai_file_access_values order by file_id, name, value`)).map(
          (r) => `${String(r.file_id).slice(5, 6)} ${r.name}=${r.value} @${Number(r.created_at) - T}`,
        );
      const repo = await openFileRepository(opts);
      try {
        expect(await values()).toEqual(["a roles=ann @-5", "a teams=ml @-5", "a teams=ops @-5", "b projects=p1 @-5"]);
        await repo.insert(record({ id: id("d"), createdAt: T, ownerPrincipal: "dee", accessAttributes: { teams: ["ops"] } }));
        await repo.insert(record({ id: id("e"), createdAt: T, ownerPrincipal: "eve" })); // no attributes: no rows
        // Another program (Llama Stack on the same database) writes, edits and deletes rows.
        await rawSql(opts, [
          llamaRow("f", "fay", `{"namespaces": ["n1"]}`),
          `update openai_files set access_attributes = '{"teams": ["sec"]}' where id = '${id("a")}'`,
          `update openai_files set created_at = ${T - 1} where id = '${id("f")}'`,
          `delete from openai_files where id = '${id("b")}'`,
        ]);
        expect(await values()).toEqual(["a teams=sec @-5", "d teams=ops @0", "f namespaces=n1 @-1"]);
        expect(await repo.delete(id("d"), T)).toBe(true);
        expect(await values()).toEqual(["a teams=sec @-5", "f namespaces=n1 @-1"]);
        // And the listing reads it: a teammate of ann's now finds her file by its new team.
        const visible = compileRowPredicate(LLAMA_STACK_DEFAULT_POLICY, "read", FILE_RESOURCE_TYPE, { principal: "zoe", attributes: { teams: ["sec"] } });
        const listed = await repo.list({ limit: 10, order: "asc", now: T, visible });
        expect(listed.map((f) => f.id)).toEqual([id("a"), id("c")]); // ann's by team, and the unowned one
      } finally {
        await repo.close();
      }
    });

    it("reads Llama Stack's \"no expiry\" value as null, keeps it stored, and keeps the row visible past it", async () => {
      const opts = await options(`llama no expiry ${name}`);
      const NO_EXPIRY = 42 * 2_592_000; // Llama Stack: created_at + ExpiresAfter.MAX * 42
      const never = `file-${"d".repeat(32)}`;
      const dated = `file-${"e".repeat(32)}`;
      await rawSql(opts, [
        `create table openai_files (id varchar not null, filename varchar, purpose varchar, bytes integer,
          created_at integer, expires_at integer, access_attributes json, owner_principal varchar, primary key (id))`,
        `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, access_attributes, owner_principal)
          values ('${never}', 'never.txt', 'assistants', 5, ${T - 10}, ${T - 10 + NO_EXPIRY}, 'null', ''),
                 ('${dated}', 'dated.txt', 'batch', 6, ${T - 5}, ${T - 5 + 2_592_000}, 'null', '')`,
      ]);
      const repo = await openFileRepository(opts);
      try {
        expect((await repo.findById(never, T))?.expiresAt).toBeNull();
        expect((await repo.findById(dated, T))?.expiresAt).toBe(T - 5 + 2_592_000);
        // Long after the stored value: a file that never expires is still there; the dated one is not.
        const later = T + 2 * NO_EXPIRY;
        expect((await repo.findById(never, later))?.expiresAt).toBeNull();
        expect(await repo.findById(dated, later)).toBeUndefined();
        expect((await repo.list({ limit: 10, order: "asc", now: later })).map((r) => r.id)).toEqual([never]);
        // One second off the sentinel is a real expiry.
        const close = record({ createdAt: T, expiresAt: T + NO_EXPIRY - 1 });
        await repo.insert(close);
        expect((await repo.findById(close.id, T))?.expiresAt).toBe(T + NO_EXPIRY - 1);
      } finally {
        await repo.close();
      }
      // Stored as Llama Stack wrote it, so Llama Stack still reads the row the same way.
      expect(await rawRows(opts, `select id, expires_at from openai_files where id in ('${never}', '${dated}') order by id`)).toEqual([
        { id: never, expires_at: T - 10 + NO_EXPIRY },
        { id: dated, expires_at: T - 5 + 2_592_000 },
      ]);
    });

    it("fails ping once closed", async () => {
      const repo = await openFileRepository(await options(`ping ${name}`));
      await repo.ping();
      await repo.close();
      await expect(repo.ping()).rejects.toThrow();
    });
  });
}

describe("reaper claims on one PostgreSQL database from two repositories (two ORMs, two pools)", () => {
  it("split the expired rows between concurrent claimers: every row once, none twice", async () => {
    const opts = await pgOptions("claims two orms");
    const [a, b] = [await openFileRepository(opts), await openFileRepository(opts)];
    try {
      const rows = Array.from({ length: 120 }, (_, i) => record({ expiresAt: T - 1000 + (i % 13) }));
      const live = record({ expiresAt: T + 10_000 });
      for (const r of [...rows, live]) await a.insert(r);
      // Both claim in waves at once, as two replicas' reapers would.
      const claimedBy = { a: [] as string[], b: [] as string[] };
      for (let wave = 0; wave < 8; wave++) {
        const [fromA, fromB] = await Promise.all([a, b].map(async (repo) => (await Promise.all([1, 2, 3].map(() => repo.claimExpired(T, 7, T + 300)))).flat()));
        claimedBy.a.push(...fromA!.map((r) => r.id));
        claimedBy.b.push(...fromB!.map((r) => r.id));
      }
      const all = [...claimedBy.a, ...claimedBy.b];
      expect(new Set(all).size).toBe(all.length);
      expect([...all].sort()).toEqual(rows.map((r) => r.id).sort());
      expect(claimedBy.a.filter((id) => claimedBy.b.includes(id))).toEqual([]);
      // Once the lease lapses, the other repository can take over the rows.
      expect((await b.claimExpired(T + 301, 1000, T + 600)).length).toBe(rows.length);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("reaper claims and Llama Stack's \"no expiry\" rows", () => {
  for (const [name, options] of backends) {
    it(`never claims a row whose expires_at is Llama Stack's no-expiry value (${name})`, async () => {
      const repo = await openFileRepository(await options(`claims llama ${name}`));
      try {
        const NO_EXPIRY = 42 * 2_592_000;
        const llama = record({ createdAt: T - 10, expiresAt: T - 10 + NO_EXPIRY });
        const expired = record({ createdAt: T - 10, expiresAt: T });
        await repo.insert(llama);
        await repo.insert(expired);
        // Long after both expiry values have passed, only the real expiry is claimed.
        expect((await repo.claimExpired(T + 2 * NO_EXPIRY, 100, T + 2 * NO_EXPIRY + 300)).map((r) => r.id)).toEqual([expired.id]);
      } finally {
        await repo.close();
      }
    });
  }
});

describe("openFileRepository failures", () => {
  it("names the PostgreSQL server and database, never the password", async () => {
    const password = "s3cr3t-Pa55";
    for (const opts of [
      { type: "postgres", url: `postgres://files:${password}@127.0.0.1:1/metadata_db` },
      { type: "postgres", host: "127.0.0.1", port: 1, db: "metadata_db", user: "files", password },
    ] as const) {
      const err = await openFileRepository(opts).then(
        () => new Error("unexpectedly opened"),
        (e: unknown) => e as Error,
      );
      expect(err.message).toContain("127.0.0.1:1/metadata_db");
      expect(err.message).not.toContain(password);
      expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(password);
    }
  });

  it("puts a SQLite database in write-ahead-log mode, which outlives the process", async () => {
    const opts = await sqliteOptions("wal");
    const repo = await openFileRepository(opts);
    await repo.close();
    expect(await rawRows(opts, "pragma journal_mode")).toEqual([{ journal_mode: "wal" }]);
  });

  it("names the SQLite path it cannot open", async () => {
    const dir = await tempDir("sqlite-fail");
    const blocker = path.join(dir, "not-a-dir");
    await (await import("node:fs/promises")).writeFile(blocker, "x");
    const dbPath = path.join(blocker, "files.db");
    await expect(openFileRepository({ type: "sqlite", dbPath })).rejects.toThrow(dbPath);
  });
});

describe("findById on SQLite's read-only node:sqlite connection", () => {
  /** Counts, from now on, the queries that reach the repository's own ORM connection. */
  function countOrmQueries(repo: object): () => number {
    const connection = (repo as unknown as { orm: MikroORM }).orm.em.getConnection();
    const execute = connection.execute.bind(connection);
    let queries = 0;
    connection.execute = ((...args: Parameters<typeof execute>) => {
      queries++;
      return execute(...args);
    }) as typeof connection.execute;
    return () => queries;
  }

  it("answers without a query on the ORM's connection, and sees rows another program committed", async () => {
    const opts = await sqliteOptions("reads-direct");
    const repo = await openFileRepository(opts);
    try {
      const mine = record({ accessAttributes: { teams: ["a", "b"] }, ownerPrincipal: "alice" });
      await repo.insert(mine);
      // A row written by another program (as Llama Stack would), after this reader was opened.
      const foreign = record({ id: "file-0123456789abcdef0123456789abcdef" });
      await rawSql(opts, [
        `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, mime_type, sha256, storage_key, status, owner_principal)
         values ('${foreign.id}', 'x.txt', 'assistants', 3, ${T}, null, 'text/plain', '${"b".repeat(64)}', 'files/${foreign.id}', 'processed', null)`,
      ]);
      const ormQueries = countOrmQueries(repo);
      expect(await repo.findById(mine.id, T)).toEqual(mine);
      expect(await repo.findById(foreign.id, T)).toMatchObject({ id: foreign.id, filename: "x.txt", bytes: 3, ownerPrincipal: null });
      expect(await repo.findById("file-ffffffffffffffffffffffffffffffff", T)).toBeUndefined();
      expect(ormQueries()).toBe(0);
    } finally {
      await repo.close();
    }
  });

  it("falls back to the ORM's connection when the reader cannot answer", async () => {
    const opts = await sqliteOptions("reads-fallback");
    const repo = await openFileRepository(opts);
    try {
      const mine = record();
      await repo.insert(mine);
      // A reader that fails (closed under it): every lookup must still be answered, by the ORM.
      (repo as unknown as { reads: { close(): void } }).reads.close();
      const ormQueries = countOrmQueries(repo);
      expect(await repo.findById(mine.id, T)).toEqual(mine);
      expect(await repo.findById("file-ffffffffffffffffffffffffffffffff", T)).toBeUndefined();
      expect(ormQueries()).toBe(2);
    } finally {
      await repo.close();
    }
  });

  it("serves list pages and cursor positions too, and the ORM's connection serves the same pages (one statement) when it cannot", async () => {
    const opts = await sqliteOptions("reads-list");
    const repo = await openFileRepository(opts);
    try {
      const owners = ["ann", "ben", "cat", null, ""];
      for (let i = 0; i < 40; i++) {
        const owner = owners[i % owners.length]!;
        await repo.insert(record({ createdAt: T - (i % 6), ownerPrincipal: owner, ...(owner && i % 3 ? { accessAttributes: { teams: [i % 2 ? "ml" : "ops"] } } : {}) }));
      }
      const visible = compileRowPredicate(LLAMA_STACK_DEFAULT_POLICY, "read", FILE_RESOURCE_TYPE, { principal: "ann", attributes: { teams: ["ml"] } });
      const walk = async () => {
        const pages: string[][] = [];
        let after: { createdAt: number; id: string } | undefined;
        for (;;) {
          const page = await repo.list({ limit: 3, order: "desc", now: T, visible, after });
          if (page.length === 0) return pages;
          pages.push(page.map((f) => f.id));
          const position = await repo.position(page.at(-1)!.id);
          after = { createdAt: position!.createdAt, id: position!.id };
        }
      };
      let ormQueries = countOrmQueries(repo);
      const onReader = await walk();
      expect(ormQueries()).toBe(0);
      expect(onReader.flat().length).toBeGreaterThan(12);
      (repo as unknown as { reads: { close(): void } }).reads.close();
      ormQueries = countOrmQueries(repo);
      expect(await walk()).toEqual(onReader);
      expect(ormQueries()).toBe(2 * onReader.length + 1);
    } finally {
      await repo.close();
    }
  });

  it("is not opened for an in-memory database", async () => {
    const { SqliteReads } = await import("../../src/metadata/sqlite-reads.js");
    expect(SqliteReads.open(":memory:")).toBeUndefined();
    const reads = SqliteReads.open(path.join(await tempDir("reads-open"), "missing", "files.db"));
    expect(reads).toBeUndefined(); // read-only: it never creates a file
  });
});
