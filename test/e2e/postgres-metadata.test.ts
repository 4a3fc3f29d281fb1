/**
 * The server as an operator runs it in production: objects in S3 (moto), metadata in PostgreSQL,
 * configured either with host/port/db/user or with a url. Every server is a real child process.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrationsList } from "../../src/metadata/migrations.js";
import { Code } from "@connectrpc/connect";
import { FilePurpose, FileStatus, ListOrder, type File } from "../../gen/ts/files/v1/files_pb.js";
import { connectClient, grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { createTestBucket, createTestDatabase, listAllKeys, listMultipartUploads, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256, chunked, rejection } from "../support/test-helpers.js";

const PART = 5 * MiB;
/** Every file, following `after` with pages of `limit`, in `order`. */
async function listEverything(client: FilesTestClient, order: ListOrder, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let after = "";
  for (;;) {
    const page = await client.list({ limit, order, after });
    expect(page.data.length).toBeLessThanOrEqual(limit);
    expect(page.firstId).toBe(page.data[0]?.id);
    expect(page.lastId).toBe(page.data.at(-1)?.id);
    seen.push(...page.data.map((f) => f.id));
    if (!page.hasMore) return seen;
    expect(page.data.length).toBe(limit);
    after = page.lastId!;
  }
}

// --- direct PostgreSQL access, to prove the rows really live there ---------------------------

interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}
const { Client: PgClientCtor } = createRequire(import.meta.url)("pg") as { Client: new (c: { connectionString: string }) => PgClient };

async function pgRows(url: string, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const client = new PgClientCtor({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

const storedIds = async (dbUrl: string) =>
  (await pgRows(dbUrl, `select id from openai_files order by id`)).map((r) => String(r.id));

// --- the two ways to point the service at PostgreSQL ------------------------------------------

/** `metadata_store` with host/port/db/user split out of a test database URL. */
function splitStore(dbUrl: string): object {
  const url = new URL(dbUrl);
  return {
    type: "postgres",
    host: url.hostname,
    port: Number(url.port),
    db: decodeURIComponent(url.pathname.slice(1)),
    user: decodeURIComponent(url.username),
    ...(url.password && { password: decodeURIComponent(url.password) }),
  };
}

const urlStore = (dbUrl: string): object => ({ type: "postgres", url: dbUrl });

const variants: [string, (dbUrl: string) => object][] = [
  ["host/port/db/user", splitStore],
  ["url", urlStore],
];

const makers: [string, (url: string) => FilesTestClient][] = [
  ["connect-node gRPC", (url) => connectClient(url, "grpc")],
  ["@grpc/grpc-js", (url) => grpcJsClient(url)],
];

describe.each(variants)("S3 objects + PostgreSQL metadata given as %s", (variant, storeFor) => {
  let bucket: string;
  let dbUrl: string;
  let config: object;
  let server: ServerProcess;
  const servers: ServerProcess[] = [];
  const clients: FilesTestClient[] = [];
  const track = <T extends FilesTestClient>(c: T): T => (clients.push(c), c);

  beforeAll(async () => {
    bucket = await createTestBucket(`pg-meta-${variant}`);
    dbUrl = await createTestDatabase(`pg_meta_${variant}`);
    config = s3ProviderConfig(testS3Endpoint(), bucket, storeFor(dbUrl), { part_size_bytes: PART });
    server = await startServer({ config });
    servers.push(server);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    // Every server still running must shut down cleanly.
    for (const s of servers) expect(await s.stop()).toBe(0);
  });

  it("logs that it uses PostgreSQL and created the table there", async () => {
    const listening = server.output.map((l) => (l.startsWith("{") ? (JSON.parse(l) as Record<string, unknown>) : {})).find((e) => e.msg === "listening");
    expect(listening).toMatchObject({ storage: "remote::s3", metadata: "postgres" });
    expect(await pgRows(dbUrl, `select count(*)::int as n from openai_files`)).toEqual([{ n: 0 }]);
  });

  describe.each(makers)("round trips through %s", (_name, make) => {
    let client: FilesTestClient;
    beforeAll(() => {
      client = track(make(server.baseUrl));
    });

    it.each([
      ["0 bytes", 0],
      ["1 byte", 1],
      ["300 000 bytes", 300_000],
      ["~11 MiB (three multipart parts)", 11 * MiB + 123],
    ])("%s: upload, download, get, list, delete", async (_label, size) => {
      const data = randomBytes(size);
      const file = await client.upload(
        { filename: `pg-${size}.bin`, purpose: FilePurpose.ASSISTANTS, sizeBytes: BigInt(size), sha256: sha256(data) },
        chunked(data),
      );
      expect(file).toMatchObject({ bytes: BigInt(size), filename: `pg-${size}.bin`, purpose: FilePurpose.ASSISTANTS, sha256: sha256(data), status: FileStatus.PROCESSED });
      expect(await listAllKeys(bucket)).toContain(file.id);
      expect(await listMultipartUploads(bucket)).toEqual([]);
      // The row is in PostgreSQL, with the values the API reported.
      const [row] = await pgRows(dbUrl, `select filename, bytes::text as bytes, sha256, purpose from openai_files where id = $1`, [file.id]);
      expect(row).toEqual({ filename: `pg-${size}.bin`, bytes: String(size), sha256: sha256(data), purpose: "assistants" });

      const download = await client.download({ fileId: file.id });
      expect(download.file?.id).toBe(file.id);
      expect(download.data.length).toBe(size);
      expect(sha256(download.data)).toBe(sha256(data));

      expect(await client.get(file.id)).toEqual(file);
      expect((await client.list({ limit: 10_000 })).data.map((f) => f.id)).toContain(file.id);

      expect(await client.delete(file.id)).toMatchObject({ id: file.id, deleted: true });
      expect(await listAllKeys(bucket)).not.toContain(file.id);
      expect(await storedIds(dbUrl)).not.toContain(file.id);
      expect((await rejection(client.get(file.id))).code).toBe(Code.NotFound);
    });
  });

  it("pages through 25 files created concurrently, limit 4, each exactly once in asc and desc order", async () => {
    const client = track(connectClient(server.baseUrl));
    for (const id of await listEverything(client, ListOrder.ASC, 100)) await client.delete(id);
    const uploaded = await Promise.all(
      Array.from({ length: 25 }, (_, i) => client.upload({ filename: `page-${i}.txt`, purpose: FilePurpose.USER_DATA }, [Buffer.from(`file ${i}`)])),
    );
    // created_at has one-second resolution: concurrent uploads must share seconds, so the id tiebreak is exercised.
    expect(new Set(uploaded.map((f) => f.createdAt)).size).toBeLessThan(25);
    const sorted = [...uploaded].sort((a, b) => Number(a.createdAt - b.createdAt) || (a.id < b.id ? -1 : 1)).map((f) => f.id);

    const asc = await listEverything(client, ListOrder.ASC, 4);
    expect(asc).toEqual(sorted);
    const desc = await listEverything(client, ListOrder.DESC, 4);
    expect(desc).toEqual([...sorted].reverse());
    expect(new Set(asc).size).toBe(25);

    // The other client reads the same pages.
    const other = track(grpcJsClient(server.baseUrl));
    expect(await listEverything(other, ListOrder.ASC, 4)).toEqual(sorted);

    for (const id of sorted) await client.delete(id);
    expect(await storedIds(dbUrl)).toEqual([]);
  });

  it("keeps files across a restart on the same database and bucket", async () => {
    const before = track(connectClient(server.baseUrl));
    const small = randomBytes(12_345);
    const large = randomBytes(11 * MiB + 7);
    const kept: [File, Buffer][] = [
      [await before.upload({ filename: "kept-small.bin", purpose: FilePurpose.BATCH }, chunked(small)), small],
      [await before.upload({ filename: "kept-large.bin", purpose: FilePurpose.VISION }, chunked(large)), large],
    ];

    expect(await server.stop()).toBe(0);
    expect(server.output.some((l) => l.includes('"shutting down"'))).toBe(true);

    server = await startServer({ config });
    servers.push(server);
    for (const make of [(u: string) => connectClient(u), (u: string) => grpcJsClient(u)]) {
      const after = track(make(server.baseUrl));
      for (const [file, data] of kept) {
        expect(await after.get(file.id)).toEqual(file);
        const download = await after.download({ fileId: file.id });
        expect(download.data.length).toBe(data.length);
        expect(sha256(download.data)).toBe(sha256(data));
      }
      expect((await after.list({ limit: 100 })).data.map((f) => f.id).sort()).toEqual(kept.map(([f]) => f.id).sort());
    }
    const after = track(grpcJsClient(server.baseUrl));
    for (const [file] of kept) await after.delete(file.id);
    expect(await storedIds(dbUrl)).toEqual([]);
  });

  it("two servers at once on the same database and bucket see each other's files", async () => {
    const replica = await startServer({ config });
    servers.push(replica);
    expect(replica.port).not.toBe(server.port);
    const a = track(connectClient(server.baseUrl));
    const b = track(grpcJsClient(replica.baseUrl));

    const dataA = randomBytes(PART + 99);
    const fromA = await a.upload({ filename: "from-a.bin", purpose: FilePurpose.ASSISTANTS }, chunked(dataA));
    const dataB = randomBytes(4_321);
    const fromB = await b.upload({ filename: "from-b.bin", purpose: FilePurpose.ASSISTANTS }, chunked(dataB));

    expect(await b.get(fromA.id)).toEqual(fromA);
    expect(sha256((await b.download({ fileId: fromA.id })).data)).toBe(sha256(dataA));
    expect(await a.get(fromB.id)).toEqual(fromB);
    expect(sha256((await a.download({ fileId: fromB.id })).data)).toBe(sha256(dataB));
    for (const client of [a, b]) {
      expect(await listEverything(client, ListOrder.ASC, 1)).toEqual([fromA, fromB].sort((x, y) => Number(x.createdAt - y.createdAt) || (x.id < y.id ? -1 : 1)).map((f) => f.id));
    }

    // A delete on one replica is seen by the other.
    await b.delete(fromA.id);
    expect((await rejection(a.get(fromA.id))).code).toBe(Code.NotFound);
    expect((await rejection(a.download({ fileId: fromA.id }))).code).toBe(Code.NotFound);
    expect((await rejection(a.delete(fromA.id))).code).toBe(Code.NotFound);
    await a.delete(fromB.id);
    expect((await rejection(b.get(fromB.id))).code).toBe(Code.NotFound);
    expect(await listAllKeys(bucket)).toEqual([]);
    expect(await storedIds(dbUrl)).toEqual([]);

    // Concurrent deletes of one file through both replicas: exactly one succeeds, the other is
    // NOT_FOUND (never another error), and neither object nor row is left.
    const files = await Promise.all(
      Array.from({ length: 12 }, (_, i) => a.upload({ filename: `race-${i}.bin`, purpose: FilePurpose.ASSISTANTS }, [randomBytes(2048)])),
    );
    for (const file of files) {
      const outcomes = await Promise.allSettled([a.delete(file.id), b.delete(file.id)]);
      const ok = outcomes.filter((o) => o.status === "fulfilled");
      const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === "rejected");
      expect(ok, file.id).toHaveLength(1);
      expect(failed.map((f) => (f.reason as { code?: number }).code), file.id).toEqual([Code.NotFound]);
    }
    expect(await listAllKeys(bucket)).toEqual([]);
    expect(await storedIds(dbUrl)).toEqual([]);
  });
});

/**
 * A TCP proxy to PostgreSQL that holds every connection until `expected` have arrived (or 5 s have
 * passed since the first), then lets them all through at once: replicas started together reach
 * their migrations in the same instant instead of whenever their start-up happens to get there.
 */
async function startingGate(dbUrl: string, expected: number): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(dbUrl);
  const sockets = new Set<net.Socket>();
  const held: (() => void)[] = [];
  let open = false;
  let timer: NodeJS.Timeout | undefined;
  const release = () => {
    open = true;
    clearTimeout(timer);
    for (const go of held.splice(0)) go();
  };
  const server = net.createServer((client) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    client.pause();
    const go = () => {
      const upstream = net.connect(Number(target.port), target.hostname);
      sockets.add(upstream);
      upstream.once("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    };
    if (open) return go();
    held.push(go);
    timer ??= setTimeout(release, 5_000);
    if (held.length >= expected) release();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = new URL(dbUrl);
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe("replicas started at the same moment on a fresh PostgreSQL database", () => {
  const REPLICAS = 4;
  const servers: ServerProcess[] = [];
  const gates: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const s of servers) expect(await s.stop()).toBe(0);
    for (const g of gates) await g.close();
  });

  // A rollout that starts several replicas against an empty database: each applies the
  // migrations at start-up, so they must not trip over each other (and every one must start).
  // The starting gate makes them reach the migrations together, so a race shows every time.
  it("all replicas start, the migrations are recorded once, and they share files", async () => {
    const bucket = await createTestBucket("pg-meta-concurrent");
    const dbUrl = await createTestDatabase("pg_meta_concurrent");
    const gate = await startingGate(dbUrl, REPLICAS);
    gates.push(gate);
    const config = s3ProviderConfig(testS3Endpoint(), bucket, urlStore(gate.url), { part_size_bytes: PART });
    const started = await Promise.allSettled(Array.from({ length: REPLICAS }, () => startServer({ config })));
    const round = started.filter((r): r is PromiseFulfilledResult<ServerProcess> => r.status === "fulfilled").map((r) => r.value);
    servers.push(...round);
    const failures = started.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => String(r.reason));
    expect(failures).toEqual([]);
    // Each migration is recorded exactly once, however many replicas raced to apply it.
    const applied = (await pgRows(dbUrl, `select name from openai_files_migrations order by id`)).map((r) => r.name);
    expect(applied).toEqual(migrationsList("postgresql").map((m) => m.name));
    expect(applied).toContain("0008_create_access_values");

    const [first, ...others] = round.map((s) => connectClient(s.baseUrl));
    const file = await first!.upload({ filename: "shared.txt", purpose: FilePurpose.USER_DATA }, [Buffer.from("shared")]);
    for (const other of others) {
      expect(await other.get(file.id)).toEqual(file);
      expect((await other.download({ fileId: file.id })).data.toString()).toBe("shared");
    }
  });
});
