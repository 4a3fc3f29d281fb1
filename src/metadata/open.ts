import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { checkServerIdentity, type ConnectionOptions } from "node:tls";
import { MikroORM, type Options } from "@mikro-orm/core";
import type { AbstractSqlDriver } from "@mikro-orm/knex";
import { Migrator } from "@mikro-orm/migrations";
import { PostgreSqlDriver } from "@mikro-orm/postgresql";
import { SqliteDriver } from "@mikro-orm/sqlite";
import { readCaFile, UNTRUSTED_CERTIFICATE_CODES } from "../config/ca-file.js";
import type { FileRepository, UploadRepository } from "../files/ports.js";
import { DeletedFileEntity, FileEntity } from "./entity.js";
import { migrationsOptions, type Dialect } from "./migrations.js";
import { MikroOrmFileRepository } from "./repository.js";
import { SqliteReads } from "./sqlite-reads.js";
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
      /**
       * TLS, in libpq's words: disable (plaintext), require (encrypted, the certificate not
       * checked), verify-full (the chain checked against sslRootCert, else Node's CAs, and the
       * host name against the certificate). Unset: no TLS options are passed at all.
       */
      sslMode?: "disable" | "require" | "verify-full";
      /** PEM file of the CA(s) that sign the server's certificate (verify-full). */
      sslRootCert?: string;
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
    // Opened after the migrations, so its statements see the current schema.
    const reads = options.type === "sqlite" ? SqliteReads.open(options.dbPath) : undefined;
    return { files: new MikroOrmFileRepository(orm, reads), uploads: new MikroOrmUploadRepository(orm) };
  } catch (err) {
    await orm?.close(true).catch(() => {});
    const reason = redact(withTlsAdvice(err, options), secrets);
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
  const ssl = pgSsl(options);
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
    // MikroORM merges driverOptions.connection into what knex hands to node-postgres (pg.Client).
    driverOptions: {
      connection: { connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, query_timeout: PG_QUERY_TIMEOUT_MS, ...(ssl !== undefined && { ssl }) },
    },
  };
}

type PgOptions = Extract<MetadataStoreOptions, { type: "postgres" }>;

type PgTlsMode = "disable" | "require" | "verify-ca" | "verify-full";

/**
 * The TLS mode and root certificate in force: ssl_mode/ssl_root_cert from the config, else the
 * url's own `sslmode`/`sslrootcert` parameters (MikroORM reads only host, port, user, password
 * and database from the url, so without this they would be dropped). libpq's `allow` and
 * `prefer` (TLS only if the server offers it) have no equivalent in node-postgres: plaintext,
 * as before. Undefined: no TLS options at all.
 */
function pgTls(options: PgOptions): { mode: PgTlsMode; rootCert?: string; field: string } | undefined {
  if (options.sslMode !== undefined) return { mode: options.sslMode, rootCert: options.sslRootCert, field: "config.metadata_store.ssl_root_cert" };
  let params: URLSearchParams | undefined;
  try {
    params = options.url ? new URL(options.url).searchParams : undefined;
  } catch {
    return undefined; // the driver reports the unparsable url
  }
  const mode = params?.get("sslmode") ?? undefined;
  const rootCert = params?.get("sslrootcert") ?? undefined;
  const field = "the url's sslrootcert";
  switch (mode) {
    case undefined:
      return rootCert !== undefined ? { mode: "verify-full", rootCert, field } : undefined;
    case "allow":
    case "prefer":
      return undefined;
    case "disable":
      return { mode, field };
    case "no-verify":
      return { mode: "require", field };
    case "require":
      // libpq: with a root certificate, require checks the chain as verify-ca does.
      return { mode: rootCert !== undefined ? "verify-ca" : "require", rootCert, field };
    case "verify-ca":
    case "verify-full":
      return { mode, rootCert, field };
    default:
      throw new Error(`the url's sslmode=${mode} is not one of disable, allow, prefer, require, verify-ca, verify-full`);
  }
}

/** node-postgres's `ssl` option (node:tls options); undefined when nothing asks for TLS settings. */
function pgSsl(options: PgOptions): false | ConnectionOptions | undefined {
  const tls = pgTls(options);
  switch (tls?.mode) {
    case undefined:
      return undefined;
    case "disable":
      return false;
    case "require":
      // As libpq: encrypted, but any certificate is accepted.
      return { rejectUnauthorized: false };
    case "verify-ca":
    case "verify-full": {
      const ca = tls.rootCert !== undefined ? readCaFile(tls.rootCert, tls.field) : undefined;
      // node-postgres hands node:tls no host when it connects by IP address, and node:tls then
      // checks the certificate against "localhost": check the host actually connected to.
      const host = pgHost(options);
      return {
        rejectUnauthorized: true,
        ...(ca !== undefined && { ca }),
        checkServerIdentity: tls.mode === "verify-full" ? (_name, cert) => checkServerIdentity(host, cert) : () => undefined,
      };
    }
  }
}

/** The host node-postgres connects to (as MikroORM picks it: host, else the url's, else its default). */
function pgHost(options: PgOptions): string {
  let fromUrl = "";
  try {
    fromUrl = options.url ? decodeURIComponent(new URL(options.url).hostname) : "";
  } catch {
    /* unparsable: the driver fails on it first */
  }
  return (options.host ?? (fromUrl || "127.0.0.1")).replace(/^\[(.*)\]$/, "$1");
}

/** The failure's message, with what to change when it is about TLS. */
function withTlsAdvice(err: unknown, options: MetadataStoreOptions): string {
  const message = err instanceof Error ? err.message : String(err);
  if (options.type !== "postgres") return message;
  let tls: ReturnType<typeof pgTls>;
  try {
    tls = pgTls(options);
  } catch {
    return message; // that is the error itself
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && UNTRUSTED_CERTIFICATE_CODES.has(code)) {
    const fix =
      tls?.rootCert === undefined
        ? "set ssl_root_cert to the PEM file of the CA that signs it"
        : `ssl_root_cert ${tls.rootCert} does not hold the CA that signs it`;
    return `the server's TLS certificate is not trusted (${code}: ${message}); ${fix}`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `the server's TLS certificate does not name ${pgHost(options)}, the host connected to (${code}: ${message}); connect by a name the certificate holds`;
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return `the server's TLS certificate is not valid now (${code}: ${message})`;
  if (/no pg_hba\.conf entry .*no encryption/.test(message)) {
    return `${message}: the server accepts TLS connections only; set ssl_mode: require or verify-full`;
  }
  if (/does not support SSL connections/.test(message)) {
    return `${message}: ssl_mode ${tls?.mode ?? ""} needs TLS; enable ssl on the server, or set ssl_mode: disable`;
  }
  return message;
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
