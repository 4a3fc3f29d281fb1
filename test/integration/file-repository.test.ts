import * as path from "node:path";
import { MikroORM } from "@mikro-orm/core";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { SqliteDriver } from "@mikro-orm/sqlite";
import { describe, expect, it } from "vitest";
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

/** Runs raw SQL outside the repository (to set up a table the way another tool left it). */
async function rawSql(options: MetadataStoreOptions, statements: string[]): Promise<void> {
  const quiet = { entities: [], discovery: { warnWhenNoEntities: false } };
  const orm =
    options.type === "sqlite"
      ? await MikroORM.init({ ...quiet, driver: SqliteDriver, dbName: options.dbPath })
      : await MikroORM.init({ ...quiet, driver: PostgreSqlDriver, clientUrl: options.url });
  try {
    for (const sql of statements) await orm.em.getConnection().execute(sql);
  } finally {
    await orm.close(true);
  }
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

    it("fails ping once closed", async () => {
      const repo = await openFileRepository(await options(`ping ${name}`));
      await repo.ping();
      await repo.close();
      await expect(repo.ping()).rejects.toThrow();
    });
  });
}

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

  it("names the SQLite path it cannot open", async () => {
    const dir = await tempDir("sqlite-fail");
    const blocker = path.join(dir, "not-a-dir");
    await (await import("node:fs/promises")).writeFile(blocker, "x");
    const dbPath = path.join(blocker, "files.db");
    await expect(openFileRepository({ type: "sqlite", dbPath })).rejects.toThrow(dbPath);
  });
});
