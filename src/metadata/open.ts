import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { MikroORM, type Options } from "@mikro-orm/core";
import type { AbstractSqlDriver } from "@mikro-orm/knex";
import { Migrator } from "@mikro-orm/migrations";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { SqliteDriver } from "@mikro-orm/sqlite";
import type { FileRepository, UploadRepository } from "../files/ports.js";
import { DeletedFileEntity, FileEntity } from "./entity.js";
import { migrationsOptions, type Dialect } from "./migrations.js";
import { MikroOrmFileRepository } from "./repository.js";
import { UploadEntity, UploadPartEntity } from "./upload-entities.js";
import { MikroOrmUploadRepository } from "./upload-repository.js";

export type MetadataStoreOptions =
  | { type: "sqlite"; dbPath: string }
  | {
      type: "postgres";
      url?: string;
      host?: string;
      port?: number;
      db?: string;
      user?: string;
      password?: string;
    };

/** A new pg connection gives up after this long instead of hanging on a black-holed host. */
const PG_CONNECT_TIMEOUT_MS = 10_000;
/** No metadata query should take this long; one that does is answered as "unavailable". */
const PG_QUERY_TIMEOUT_MS = 15_000;
/** Replicas wait this long for another's migrations (see withMigrationLock). */
const MIGRATION_LOCK_TIMEOUT_MS = 600_000;

/** Both repositories on one ORM and pool; `files.close()` closes it. */
export interface MetadataRepositories {
  files: FileRepository;
  uploads: UploadRepository;
}

/** The files repository alone (for tools and tests that need no uploads). */
export async function openFileRepository(options: MetadataStoreOptions, opts: { debug?: boolean } = {}): Promise<FileRepository> {
  return (await openMetadata(options, opts)).files;
}

/**
 * Connects, applies pending migrations and returns the repositories.
 * Failures name the database (path, or host:port/db) and never carry the password.
 */
export async function openMetadata(
  options: MetadataStoreOptions,
  opts: { debug?: boolean } = {},
): Promise<MetadataRepositories> {
  const target = describeStore(options);
  const secrets = secretsOf(options);
  let orm: MikroORM<AbstractSqlDriver> | undefined;
  try {
    if (options.type === "sqlite" && options.dbPath !== ":memory:") {
      await mkdir(dirname(resolve(options.dbPath)), { recursive: true });
    }
    orm = await MikroORM.init<AbstractSqlDriver>(ormOptions(options, opts.debug ?? false));
    // init() only logs a failed connection; make it an error here.
    const check = await orm.checkConnection();
    if (!check.ok) throw check.error ?? new Error(check.reason);
    if (options.type === "sqlite") await useWriteAheadLog(orm);
    await withMigrationLock(orm, options.type, () => orm!.getMigrator().up());
    return { files: new MikroOrmFileRepository(orm), uploads: new MikroOrmUploadRepository(orm) };
  } catch (err) {
    await orm?.close(true).catch(() => {});
    const reason = redact(err instanceof Error ? err.message : String(err), secrets);
    const safeCause = !(err instanceof Error) || reason === err.message;
    throw new Error(`cannot open metadata database ${target}: ${reason}`, safeCause ? { cause: err } : undefined);
  }
}

/**
 * SQLite's write-ahead log: a commit costs one fsync of the log instead of several of the rollback
 * journal (synchronous stays FULL, so a committed row survives power loss), and readers (lists, a
 * `reconcile` run beside the server) never wait for a writer. The mode is stored in the file.
 */
async function useWriteAheadLog(orm: MikroORM<AbstractSqlDriver>): Promise<void> {
  const connection = orm.em.getConnection();
  await connection.execute("pragma journal_mode = wal");
  await connection.execute("pragma synchronous = full");
  // Another process (reconcile) may hold the write lock for a moment: wait for it rather than fail.
  await connection.execute("pragma busy_timeout = 5000");
}

/** Any fixed 64-bit number, the same in every replica: the advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = 0x0f11e5_0001;

/**
 * Replicas starting together on one PostgreSQL database would race to create the same tables
 * (duplicate-key errors from the catalog). A session advisory lock, held on one pinned pooled
 * connection while the migrator works on others, lets one replica migrate while the rest wait.
 * SQLite serves one process, so it needs none.
 */
async function withMigrationLock<T>(orm: MikroORM<AbstractSqlDriver>, type: MetadataStoreOptions["type"], migrate: () => Promise<T>): Promise<T> {
  if (type !== "postgres") return migrate();
  const knex = orm.em.getConnection().getKnex();
  const connection: unknown = await knex.client.acquireConnection();
  try {
    await knex
      .raw("select pg_advisory_lock(?)", [MIGRATION_LOCK_KEY])
      .connection(connection)
      .options({ query_timeout: MIGRATION_LOCK_TIMEOUT_MS });
    try {
      return await migrate();
    } finally {
      await knex.raw("select pg_advisory_unlock(?)", [MIGRATION_LOCK_KEY]).connection(connection);
    }
  } finally {
    await knex.client.releaseConnection(connection);
  }
}

function ormOptions(options: MetadataStoreOptions, debug: boolean): Options<AbstractSqlDriver> {
  const dialect: Dialect = options.type === "sqlite" ? "sqlite" : "postgresql";
  const common: Options<AbstractSqlDriver> = {
    entities: [FileEntity, DeletedFileEntity, UploadEntity, UploadPartEntity],
    extensions: [Migrator],
    migrations: migrationsOptions(dialect),
    // The service writes JSON logs to stdout: MikroORM stays silent unless asked, then uses stderr.
    debug,
    logger: debug ? (message: string) => process.stderr.write(`${message}\n`) : () => {},
    colors: false,
    discovery: { warnWhenNoEntities: false },
    metadataCache: { enabled: false },
  };
  if (options.type === "sqlite") {
    return { ...common, driver: SqliteDriver, dbName: options.dbPath };
  }
  const connection = {
    clientUrl: options.url,
    host: options.host,
    port: options.port,
    dbName: options.db,
    user: options.user,
    password: options.password,
  };
  return {
    ...common,
    driver: PostgreSqlDriver,
    // Unset keys must be absent, not undefined, or they would mask what the URL says.
    ...Object.fromEntries(Object.entries(connection).filter(([, v]) => v !== undefined)),
    // query_timeout is node-postgres's own read deadline: a server that stops answering (frozen,
    // partitioned) never enforces statement_timeout, and a request would wait on it for ever.
    driverOptions: { connection: { connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, query_timeout: PG_QUERY_TIMEOUT_MS } },
  };
}

/** "sqlite /path/files.db" or "postgresql host:port/db", for messages. */
export function describeStore(options: MetadataStoreOptions): string {
  if (options.type === "sqlite") return `sqlite ${options.dbPath}`;
  let url: URL | undefined;
  try {
    url = options.url ? new URL(options.url) : undefined;
  } catch {
    return "postgresql (unparsable url)"; // never echo it: it may hold a password
  }
  const host = options.host ?? (url?.hostname || "127.0.0.1");
  const port = options.port ?? (url?.port ? Number(url.port) : 5432);
  const db = options.db ?? (url ? decodeURIComponent(url.pathname.replace(/^\//, "")) : "");
  return `postgresql ${host}:${port}/${db}`;
}

function secretsOf(options: MetadataStoreOptions): string[] {
  if (options.type === "sqlite") return [];
  const secrets = [options.password ?? ""];
  if (options.url) {
    try {
      const raw = new URL(options.url).password;
      secrets.push(raw, decodeURIComponent(raw));
    } catch {
      secrets.push(options.url); // unparsable: hide the whole thing
    }
  }
  return secrets.filter((s) => s.length > 0);
}

function redact(message: string, secrets: string[]): string {
  let out = message.replace(/\/\/([^:/@\s]+):([^@\s]*)@/g, "//$1:*****@");
  for (const secret of secrets) out = out.split(secret).join("*****");
  return out;
}
