import type { DatabaseSync, StatementSync } from "node:sqlite";

/** What `get` answers when the read could not be made here; the caller then asks the ORM's connection. */
export const NOT_HERE = Symbol("not read here");

type SqlValue = string | number | null;

/** Distinct statements kept prepared; past this the cache starts again (bounded memory). */
const MAX_STATEMENTS = 256;

/**
 * A second, read-only connection to the SQLite file, on Node's built-in node:sqlite, for the
 * hottest reads (a file by id: retrieve, content, download; and list pages).
 *
 * Why: through MikroORM, knex and node-sqlite3, one primary-key lookup costs about 110–160 µs of
 * CPU and three round trips through libuv's thread pool (prepare, step, finalize); a prepared
 * statement on this connection costs about 5 µs, on the event loop, with no thread hop (see
 * BENCHMARKS.md, "Per call"). Write-ahead logging (open.ts) lets this reader see every committed
 * row without waiting for writers. The connection never waits for a lock (timeout 0): when
 * SQLite answers busy, or anything else goes wrong, `get` answers NOT_HERE and the ORM's
 * connection, which waits and reports errors as before, serves the read. (A writer in SQLite's
 * `locking_mode = exclusive` would hide its commits from every other connection, this one too;
 * neither this service nor Llama Stack uses that mode.)
 */
export class SqliteReads {
  private readonly statements = new Map<string, StatementSync>();

  private constructor(private readonly db: DatabaseSync) {}

  /** Opens the reader, or answers undefined where there is none (no node:sqlite, an in-memory database, a file it cannot open). */
  static open(dbPath: string): SqliteReads | undefined {
    if (dbPath === ":memory:" || dbPath === "" || dbPath.startsWith("file:")) return undefined;
    const sqlite = loadNodeSqlite();
    if (!sqlite) return undefined;
    try {
      return new SqliteReads(new sqlite.DatabaseSync(dbPath, { readOnly: true, timeout: 0 }));
    } catch {
      return undefined;
    }
  }

  /** The first row of `sql`, undefined when there is none, or NOT_HERE. */
  get<T>(sql: string, params: readonly SqlValue[]): T | undefined | typeof NOT_HERE {
    try {
      return this.statement(sql).get(...params) as T | undefined;
    } catch {
      return NOT_HERE;
    }
  }

  /** Every row of `sql` (a list page), or NOT_HERE. */
  all<T>(sql: string, params: readonly SqlValue[]): T[] | typeof NOT_HERE {
    try {
      return this.statement(sql).all(...params) as T[];
    } catch {
      return NOT_HERE;
    }
  }

  /** Prepared once per distinct text; list pages have a few shapes (order, purpose, cursor, branches). */
  private statement(sql: string): StatementSync {
    let statement = this.statements.get(sql);
    if (!statement) {
      if (this.statements.size >= MAX_STATEMENTS) this.statements.clear();
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  close(): void {
    this.statements.clear();
    try {
      this.db.close();
    } catch {
      // already closed
    }
  }
}

/**
 * node:sqlite, without the one ExperimentalWarning line it prints when first loaded (the service's
 * stderr stays for its own messages); undefined on a Node without it.
 */
function loadNodeSqlite(): typeof import("node:sqlite") | undefined {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    if (/SQLite is an experimental feature/.test(text)) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return process.getBuiltinModule?.("node:sqlite") as typeof import("node:sqlite") | undefined;
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}
