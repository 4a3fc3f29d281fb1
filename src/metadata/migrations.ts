import { Migration } from "@mikro-orm/migrations";
import type { MigrationObject, MigrationsOptions } from "@mikro-orm/core";
import { ACCESS_VALUES_TABLE, DELETED_FILES_TABLE, FILES_TABLE } from "./entity.js";
import { UPLOAD_PARTS_TABLE, UPLOADS_TABLE } from "./upload-entities.js";

export type Dialect = "sqlite" | "postgresql";

/**
 * Creates `openai_files` unless it exists (Llama Stack may have created it already), plus the
 * indexes that keyset paging walks: (created_at, id) and, for purpose filters, (purpose, created_at, id).
 * Not reversible on purpose: dropping the table would also drop rows Llama Stack wrote.
 */
function createFilesTable(dialect: Dialect) {
  return class CreateOpenAiFiles extends Migration {
    override up(): void {
      // PostgreSQL: byte-order collation, so id ordering does not depend on the server's locale
      // and matches SQLite's BINARY ordering.
      const idType = dialect === "postgresql" ? `text collate "C"` : "text";
      this.addSql(`create table if not exists "${FILES_TABLE}" (
        "id" ${idType} not null primary key,
        "filename" text not null,
        "purpose" varchar(64) not null,
        "bytes" bigint not null,
        "created_at" bigint not null,
        "expires_at" bigint null,
        "mime_type" text not null default 'application/octet-stream',
        "sha256" varchar(64) not null default '',
        "storage_key" text not null,
        "status" varchar(32) not null default 'processed',
        "owner_principal" text null
      )`);
      this.addSql(
        `create index if not exists "${FILES_TABLE}_created_at_id_index" on "${FILES_TABLE}" ("created_at", "id")`,
      );
      this.addSql(
        `create index if not exists "${FILES_TABLE}_purpose_created_at_id_index" on "${FILES_TABLE}" ("purpose", "created_at", "id")`,
      );
    }
  };
}

/** Our columns, with the values rows written by Llama Stack get. */
const OUR_COLUMNS: ReadonlyArray<readonly [name: string, ddl: string]> = [
  ["mime_type", `text not null default 'application/octet-stream'`],
  ["sha256", `varchar(64) not null default ''`],
  ["storage_key", `text not null default ''`],
  ["status", `varchar(32) not null default 'processed'`],
  ["owner_principal", "text null"],
];

/**
 * A no-op on tables the first migration created. On a table Llama Stack created, adds the columns
 * we need and, on PostgreSQL, widens its int4 columns to bigint (int4 stops at 2 GiB).
 * Llama Stack keeps each object at the bucket root under the file id, hence storage_key = id.
 */
function adoptLlamaStackTable(dialect: Dialect) {
  return class AdoptLlamaStackTable extends Migration {
    override async up(): Promise<void> {
      const rows =
        dialect === "postgresql"
          ? await this.execute(
              `select column_name as name, data_type as type from information_schema.columns
               where table_schema = current_schema() and table_name = ?`,
              [FILES_TABLE],
            )
          : await this.execute(`select name, type from pragma_table_info(?)`, [FILES_TABLE]);
      const columns = new Map(rows.map((r) => [String(r.name), String(r.type).toLowerCase()]));
      for (const [name, ddl] of OUR_COLUMNS) {
        if (!columns.has(name)) this.addSql(`alter table "${FILES_TABLE}" add column "${name}" ${ddl}`);
      }
      if (!columns.has("storage_key")) {
        this.addSql(`update "${FILES_TABLE}" set "storage_key" = "id" where "storage_key" = ''`);
      }
      if (dialect === "postgresql") {
        for (const name of ["bytes", "created_at", "expires_at"]) {
          const type = columns.get(name);
          if (type === "integer" || type === "smallint") {
            this.addSql(`alter table "${FILES_TABLE}" alter column "${name}" type bigint`);
          }
        }
      }
    }
  };
}

/**
 * Uploads (OpenAI's file-in-parts API) and their parts. The status index serves the sweep for
 * expired uploads; parts are always read by upload.
 */
function createUploadTables() {
  return class CreateUploadTables extends Migration {
    override up(): void {
      this.addSql(`create table if not exists "${UPLOADS_TABLE}" (
        "id" text not null primary key,
        "filename" text not null,
        "purpose" varchar(64) not null,
        "bytes" bigint not null,
        "mime_type" text not null,
        "created_at" bigint not null,
        "expires_at" bigint not null,
        "file_expires_after_seconds" bigint null,
        "status" varchar(32) not null,
        "file_id" text null,
        "owner_principal" text null
      )`);
      this.addSql(
        `create index if not exists "${UPLOADS_TABLE}_status_expires_at_index" on "${UPLOADS_TABLE}" ("status", "expires_at")`,
      );
      this.addSql(`create table if not exists "${UPLOAD_PARTS_TABLE}" (
        "id" text not null primary key,
        "upload_id" text not null,
        "bytes" bigint not null,
        "sha256" varchar(64) not null,
        "storage_key" text not null,
        "created_at" bigint not null
      )`);
      this.addSql(
        `create index if not exists "${UPLOAD_PARTS_TABLE}_upload_id_index" on "${UPLOAD_PARTS_TABLE}" ("upload_id")`,
      );
    }
  };
}

/** Positions of deleted files, for `after` cursors (see FileRepository.position). */
function createDeletedFilesTable() {
  return class CreateDeletedFilesTable extends Migration {
    override up(): void {
      this.addSql(`create table if not exists "${DELETED_FILES_TABLE}" (
        "id" text not null primary key,
        "created_at" bigint not null,
        "deleted_at" bigint not null
      )`);
      this.addSql(
        `create index if not exists "${DELETED_FILES_TABLE}_deleted_at_index" on "${DELETED_FILES_TABLE}" ("deleted_at")`,
      );
    }
  };
}

/**
 * The reaper's claim lease (see FileRepository.claimExpired): a row held until this unix second,
 * and the index its claims use. Only adds nullable columns (and an index), so tables Llama Stack
 * writes to stay as they were for it.
 */
function addReapClaimColumns() {
  return class AddReapClaimColumns extends Migration {
    override up(): void {
      this.addSql(`alter table "${FILES_TABLE}" add column "reap_claimed_until" bigint null`);
      this.addSql(`alter table "${UPLOADS_TABLE}" add column "reap_claimed_until" bigint null`);
      // Each replica's claim looks for expired rows once per pass: an index, not a table scan.
      this.addSql(`create index if not exists "${FILES_TABLE}_expires_at_index" on "${FILES_TABLE}" ("expires_at")`);
    }
  };
}

/**
 * Per-principal listing (authentication on): an index that keyset paging can walk for one owner,
 * and the owner of each remembered deleted position, so `after` cursors stay per principal.
 */
function addOwnerIndexes() {
  return class AddOwnerIndexes extends Migration {
    override up(): void {
      this.addSql(`alter table "${DELETED_FILES_TABLE}" add column "owner_principal" text null`);
      this.addSql(
        `create index if not exists "${FILES_TABLE}_owner_created_at_id_index" on "${FILES_TABLE}" ("owner_principal", "created_at", "id")`,
      );
    }
  };
}

/**
 * Llama Stack's `access_attributes` (JSON: the owner's attributes when the row was written) on
 * files, uploads and remembered deleted positions. A table Llama Stack created with
 * authentication has it already; rows that predate it read as JSON null (no attributes).
 */
function addAccessAttributes(dialect: Dialect) {
  return class AddAccessAttributes extends Migration {
    override async up(): Promise<void> {
      const type = dialect === "postgresql" ? "json" : "text";
      for (const table of [FILES_TABLE, UPLOADS_TABLE, DELETED_FILES_TABLE]) {
        const rows =
          dialect === "postgresql"
            ? await this.execute(
                `select column_name as name from information_schema.columns where table_schema = current_schema() and table_name = ?`,
                [table],
              )
            : await this.execute(`select name from pragma_table_info(?)`, [table]);
        if (!rows.some((r) => String(r.name) === "access_attributes")) {
          this.addSql(`alter table "${table}" add column "access_attributes" ${type} null`);
        }
      }
    }
  };
}

/**
 * `openai_file_access_values`: each file's attribute values as rows ordered like the listing, so a
 * sharing policy's "shares a value in teams" is an index range instead of a scan that parses every
 * row's JSON (BENCHMARKS.md, "Listing under the access policy"). Triggers on `openai_files` keep it,
 * whoever writes the row (this service, or Llama Stack on the same database); the migration fills
 * it from the rows already there. Only ever a superset of what the JSON says: the list query still
 * applies the policy's own condition to every row it returns.
 */
function createAccessValuesTable(dialect: Dialect) {
  return class CreateAccessValuesTable extends Migration {
    override async up(): Promise<void> {
      const t = `"${ACCESS_VALUES_TABLE}"`;
      const f = `"${FILES_TABLE}"`;
      if (dialect === "sqlite") {
        this.addSql(`create table if not exists ${t} (
          "name" text not null, "value" text not null, "created_at" bigint not null, "file_id" text not null,
          primary key ("name", "value", "created_at", "file_id")
        ) without rowid`);
        this.addSql(`create index if not exists "${ACCESS_VALUES_TABLE}_file_id_index" on ${t} ("file_id")`);
        const valuesOf = (row: string) => `select k.key, v.value, ${row}."created_at", ${row}."id"
          from json_each(case when json_valid(${row}."access_attributes") and json_type(${row}."access_attributes") = 'object'
                              then ${row}."access_attributes" else '{}' end) as k,
               json_each(case when k.type = 'array' then k.value else '[]' end) as v
          where v.type = 'text'`;
        const insert = `insert or ignore into ${t} ("name", "value", "created_at", "file_id")`;
        this.addSql(`create trigger if not exists "${FILES_TABLE}_access_values_insert" after insert on ${f}
          begin ${insert} ${valuesOf("new")}; end`);
        this.addSql(`create trigger if not exists "${FILES_TABLE}_access_values_delete" after delete on ${f}
          begin delete from ${t} where "file_id" = old."id"; end`);
        this.addSql(`create trigger if not exists "${FILES_TABLE}_access_values_update"
          after update of "access_attributes", "created_at", "id" on ${f}
          begin delete from ${t} where "file_id" = old."id"; ${insert} ${valuesOf("new")}; end`);
        this.addSql(`${insert} ${valuesOf(f)}`.replace(`from json_each`, `from ${f}, json_each`));
        return;
      }
      // file_id sorts like openai_files.id: "C" where this service created the table, the
      // database's default where Llama Stack did, so both walk the same order.
      const rows = await this.execute(
        `select collation_name as c from information_schema.columns where table_schema = current_schema() and table_name = ? and column_name = 'id'`,
        [FILES_TABLE],
      );
      const collation = rows[0]?.c ? ` collate "${String(rows[0].c).replace(/"/g, "")}"` : "";
      this.addSql(`create table if not exists ${t} (
        "name" text not null, "value" text not null, "created_at" bigint not null, "file_id" text${collation} not null,
        primary key ("name", "value", "created_at", "file_id")
      )`);
      this.addSql(`create index if not exists "${ACCESS_VALUES_TABLE}_file_id_index" on ${t} ("file_id")`);
      const valuesOf = (row: string) => `select k.key, v.e #>> '{}', ${row}."created_at", ${row}."id"
        from json_each(case when json_typeof(${row}."access_attributes"::json) = 'object' then ${row}."access_attributes"::json else '{}'::json end) as k(key, value)
        cross join lateral json_array_elements(case when json_typeof(k.value) = 'array' then k.value else '[]'::json end) as v(e)
        where json_typeof(v.e) = 'string'`;
      const insert = `insert into ${t} ("name", "value", "created_at", "file_id")`;
      this.addSql(`create or replace function "${ACCESS_VALUES_TABLE}_sync"() returns trigger language plpgsql as $body$
        begin
          if tg_op <> 'INSERT' then delete from ${t} where "file_id" = old."id"; end if;
          if tg_op <> 'DELETE' then ${insert} ${valuesOf("new")} on conflict do nothing; end if;
          return null;
        end $body$`);
      this.addSql(`drop trigger if exists "${FILES_TABLE}_access_values" on ${f}`);
      this.addSql(`create trigger "${FILES_TABLE}_access_values"
        after insert or delete or update of "access_attributes", "created_at", "id" on ${f}
        for each row execute function "${ACCESS_VALUES_TABLE}_sync"()`);
      this.addSql(`${insert} ${valuesOf("f")}`.replace(`from json_each`, `from ${f} as f cross join lateral json_each`) + " on conflict do nothing");
    }
  };
}

/** Inline list (no file globbing), so it runs the same under node, tsx and vitest. */
export function migrationsList(dialect: Dialect): MigrationObject[] {
  return [
    { name: "0001_create_openai_files", class: createFilesTable(dialect) },
    { name: "0002_adopt_llama_stack_table", class: adoptLlamaStackTable(dialect) },
    { name: "0003_create_upload_tables", class: createUploadTables() },
    { name: "0004_create_deleted_files_table", class: createDeletedFilesTable() },
    { name: "0005_add_reap_claim_columns", class: addReapClaimColumns() },
    { name: "0006_add_owner_indexes", class: addOwnerIndexes() },
    { name: "0007_add_access_attributes", class: addAccessAttributes(dialect) },
    { name: "0008_create_access_values", class: createAccessValuesTable(dialect) },
  ];
}

export function migrationsOptions(dialect: Dialect): MigrationsOptions {
  return {
    // Our own bookkeeping table, so it cannot clash with another tool's `mikro_orm_migrations`.
    tableName: "openai_files_migrations",
    migrationsList: migrationsList(dialect),
    transactional: true,
    allOrNothing: true,
    // No snapshot file (it would be written next to the process's working directory) and no
    // "Processing migration" lines on stdout: the service logs JSON there.
    snapshot: false,
    silent: true,
  };
}
