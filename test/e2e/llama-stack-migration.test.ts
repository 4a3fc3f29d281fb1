/**
 * Taking over from Llama Stack 0.7's remote::s3 files provider: its `openai_files` table (created
 * with its exact DDL, rows inserted the way it inserts them) and its objects (at the bucket root
 * under the file id). With an empty key_prefix the server serves those files, reads Llama Stack's
 * "no expiry" value as null, and its migration only adds columns.
 *
 * What Llama Stack does (src/llama_stack/providers/remote/files/s3/files.py and the SQLAlchemy
 * sqlstore): columns id VARCHAR primary key, filename VARCHAR, purpose VARCHAR, bytes INTEGER,
 * created_at INTEGER, expires_at INTEGER, then access_attributes JSON and owner_principal VARCHAR
 * (added by its AuthorizedSqlStore); without a user it writes owner_principal '' and JSON null.
 * expires_at is created_at + 42 × 2592000 for "no expiry", created_at + 2592000 for batch files,
 * created_at + expires_after.seconds when given. put_object(Key=file_id, Body=...) with no content type.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { runReconcile, sql, writeConfigFile, type JsonReport, type MetadataStoreYaml } from "../support/reconcile-process.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const MAX = 2_592_000; // Llama Stack's ExpiresAfter.MAX (30 days)
const NO_EXPIRY = 42 * MAX;

/** SQLAlchemy's CREATE TABLE for Llama Stack's schema; the same text on SQLite and PostgreSQL. */
const LLAMA_DDL = `CREATE TABLE openai_files (
	id VARCHAR NOT NULL, 
	filename VARCHAR, 
	purpose VARCHAR, 
	bytes INTEGER, 
	created_at INTEGER, 
	expires_at INTEGER, 
	access_attributes JSON, 
	owner_principal VARCHAR, 
	PRIMARY KEY (id)
)`;
const LLAMA_COLUMNS = ["id", "filename", "purpose", "bytes", "created_at", "expires_at", "access_attributes", "owner_principal"];

interface LlamaFile {
  id: string;
  filename: string;
  purpose: string;
  createdAt: number;
  expiresAt: number;
  data: Buffer;
}

const backends: [string, (label: string) => Promise<MetadataStoreYaml>][] = [
  ["SQLite", async (label) => ({ type: "sqlite", db_path: join(await tempDir(label), "llama.db") })],
  ["PostgreSQL", async (label) => ({ type: "postgres", url: await createTestDatabase(label) })],
];

/** Column names and types, in table order. */
async function columns(store: MetadataStoreYaml): Promise<[string, string][]> {
  const rows =
    store.type === "sqlite"
      ? await sql(store, `select name, type from pragma_table_info('openai_files') order by cid`)
      : await sql(
          store,
          `select column_name as name, data_type as type from information_schema.columns
           where table_schema = current_schema() and table_name = 'openai_files' order by ordinal_position`,
        );
  return rows.map((r) => [String(r.name), String(r.type)]);
}

/** Llama Stack's columns of every row, numbers as numbers (pg returns bigint as strings). */
async function llamaRows(store: MetadataStoreYaml): Promise<Record<string, unknown>[]> {
  const rows = await sql(store, `select ${LLAMA_COLUMNS.join(", ")} from openai_files order by id`);
  return rows.map((r) => ({ ...r, bytes: Number(r.bytes), created_at: Number(r.created_at), expires_at: Number(r.expires_at) }));
}

for (const [name, metadataStoreFor] of backends) {
  describe(`a Llama Stack bucket and openai_files table on ${name}`, () => {
    const now = Math.floor(Date.now() / 1000);
    const s3 = testS3Client();
    let bucket: string;
    let store: MetadataStoreYaml;
    let config: object;
    let server: ServerProcess;
    let client: OpenAI;
    let before: Record<string, unknown>[];

    const file = (purpose: string, createdAt: number, expiresAt: number): LlamaFile => ({
      id: `file-${randomUUID().replace(/-/g, "")}`, // f"file-{uuid.uuid4().hex}"
      filename: `${purpose}-${createdAt}.txt`,
      purpose,
      createdAt,
      expiresAt,
      data: randomBytes(100 + Math.floor(Math.random() * 1000)),
    });
    const never1 = file("assistants", now - 500, now - 500 + NO_EXPIRY);
    const never2 = file("user_data", now - 400, now - 400 + NO_EXPIRY);
    const never3 = file("assistants", now - 400, now - 400 + NO_EXPIRY); // same second as never2
    const batch = file("batch", now - 300, now - 300 + MAX); // the batch default: a real expiry
    const dated = file("user_data", now - 200, now - 200 + 7200); // expires_after 7200
    const expired = file("assistants", now - 7200, now - 7200 + 3600);
    const all = [never1, never2, never3, batch, dated, expired];
    const visible = [never1, never2, never3, batch, dated];
    const unrelated = ["other-app/data.bin", "README.txt"];

    /** Newest first, ties by id descending: the list order. */
    const desc = (files: LlamaFile[]) =>
      [...files].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).map((f) => f.id);

    beforeAll(async () => {
      bucket = await createTestBucket(`llama ${name}`);
      store = await metadataStoreFor(`llama ${name}`);
      await sql(store, LLAMA_DDL);
      for (const f of all) {
        await sql(
          store,
          `insert into openai_files (id, filename, purpose, bytes, created_at, expires_at, owner_principal, access_attributes)
           values (?, ?, ?, ?, ?, ?, ?, ?)`,
          [f.id, f.filename, f.purpose, f.data.length, f.createdAt, f.expiresAt, "", "null"],
        );
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: f.id, Body: f.data }));
      }
      for (const key of unrelated) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: "someone else's" }));
      before = await llamaRows(store);
      // The reaper stays off here so that the expired row is still there to compare.
      config = s3ProviderConfig(testS3Endpoint(), bucket, store, { key_prefix: "", reaper: { interval_seconds: 0 } });
      server = await startServer({ config });
      client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
    });
    afterAll(async () => {
      await server?.stop();
      s3.destroy();
    });

    it("lists the files in order, page by page, without the expired one", async () => {
      for (const limit of [2, 100]) {
        const ids = [];
        for await (const f of client.files.list({ limit })) ids.push(f.id);
        expect(ids, `limit ${limit}`).toEqual(desc(visible));
        const asc = [];
        for await (const f of client.files.list({ limit, order: "asc" })) asc.push(f.id);
        expect(asc, `limit ${limit} asc`).toEqual(desc(visible).reverse());
      }
      const page = await client.files.list({ limit: 2 });
      expect(page.data.map((f) => f.id)).toEqual(desc(visible).slice(0, 2));
      expect(page.hasNextPage()).toBe(true);
      const purpose = [];
      for await (const f of client.files.list({ purpose: "user_data" })) purpose.push(f.id);
      expect(purpose).toEqual(desc([never2, dated]));
    });

    it("retrieves each file with expires_at null for Llama Stack's \"no expiry\", and its content", async () => {
      for (const f of visible) {
        const got = await client.files.retrieve(f.id);
        expect(got).toMatchObject({
          id: f.id,
          object: "file",
          filename: f.filename,
          purpose: f.purpose,
          bytes: f.data.length,
          created_at: f.createdAt,
          expires_at: f.expiresAt === f.createdAt + NO_EXPIRY ? null : f.expiresAt,
        });
        expect(Buffer.from(await (await client.files.content(f.id)).arrayBuffer()).equals(f.data)).toBe(true);
      }
      expect((await client.files.retrieve(never1.id)).expires_at).toBeNull();
      expect((await client.files.retrieve(batch.id)).expires_at).toBe(batch.createdAt + MAX);
      await expect(client.files.retrieve(expired.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      await expect(client.files.content(expired.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    });

    it("added columns only, leaving Llama Stack's columns and values as they were", async () => {
      const cols = await columns(store);
      const llama = cols.filter(([n]) => LLAMA_COLUMNS.includes(n));
      expect(cols.slice(0, LLAMA_COLUMNS.length)).toEqual(llama); // ours come after Llama Stack's
      if (store.type === "sqlite") {
        expect(llama).toEqual([
          ["id", "VARCHAR"],
          ["filename", "VARCHAR"],
          ["purpose", "VARCHAR"],
          ["bytes", "INTEGER"],
          ["created_at", "INTEGER"],
          ["expires_at", "INTEGER"],
          ["access_attributes", "JSON"],
          ["owner_principal", "VARCHAR"],
        ]);
      } else {
        // PostgreSQL: the int4 columns are widened to bigint (files reach 8 GiB); SQLAlchemy reads both as int.
        expect(llama).toEqual([
          ["id", "character varying"],
          ["filename", "character varying"],
          ["purpose", "character varying"],
          ["bytes", "bigint"],
          ["created_at", "bigint"],
          ["expires_at", "bigint"],
          ["access_attributes", "json"],
          ["owner_principal", "character varying"],
        ]);
      }
      expect(cols.map(([n]) => n)).toEqual(expect.arrayContaining(["mime_type", "sha256", "storage_key", "status"]));
      expect(await llamaRows(store)).toEqual(before);
      // Where we look for each object: the id, at the bucket root.
      const keys = await sql(store, `select id, storage_key from openai_files order by id`);
      for (const row of keys) expect(row.storage_key).toBe(row.id);
    });

    it("reconcile takes none of Llama Stack's objects for orphans, and leaves other keys alone", async () => {
      const configPath = await writeConfigFile(config);
      const run = await runReconcile(["--dry-run", "--json", "--config", configPath]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const { report } = JSON.parse(run.stdout) as JsonReport;
      expect(report).toMatchObject({ objects: all.length + unrelated.length, fileRows: all.length, orphanObjects: [], missingObjects: [], incompleteWrites: [] });
      expect(report.unknownObjects.map((o) => o.key).sort()).toEqual([...unrelated].sort());
      const apply = await runReconcile(["--apply", "--grace-seconds", "0", "--config", configPath]);
      expect(apply.code).toBe(0);
      expect((await listAllKeys(bucket)).sort()).toEqual([...all.map((f) => f.id), ...unrelated].sort());
    });

    it("deletes a file: its row and its object", async () => {
      expect(await client.files.delete(batch.id)).toMatchObject({ id: batch.id, deleted: true });
      expect(await sql(store, `select id from openai_files where id = ?`, [batch.id])).toEqual([]);
      expect(await listAllKeys(bucket)).not.toContain(batch.id);
      await expect(client.files.retrieve(batch.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      // Nothing else changed.
      expect(await llamaRows(store)).toEqual(before.filter((r) => r.id !== batch.id));
    });

    it("starts a second time without changing the schema or the rows", async () => {
      const cols = await columns(store);
      const rows = await llamaRows(store);
      const migrations = await sql(store, `select name from openai_files_migrations order by name`);
      expect(migrations.length).toBeGreaterThan(0);
      await server.stop();
      server = await startServer({ config });
      client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
      expect(await columns(store)).toEqual(cols);
      expect(await llamaRows(store)).toEqual(rows);
      expect(await sql(store, `select name from openai_files_migrations order by name`)).toEqual(migrations);
      const ids = [];
      for await (const f of client.files.list()) ids.push(f.id);
      expect(ids).toEqual(desc([never1, never2, never3, dated]));
    });
  });
}
