/**
 * The server with no configuration at all, as someone trying it out runs it: files on the local
 * disk under ./data/files, metadata in SQLite at ./data/files.db, both relative to the cwd.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { FilePurpose, FileStatus, type File } from "../../gen/ts/files/v1/files_pb.js";
import { connectClient, grpcJsClient, type FilesTestClient } from "../support/grpc-clients.js";
import { tempDir } from "../support/env.js";
import { runServerToExit, serverCommand, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256, chunked, rejection, eventually } from "../support/test-helpers.js";

/** Names in `dir`, or [] if it does not exist. */
async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** The ids in the SQLite database the server wrote (read-only, alongside the running server). */
function sqliteIds(dbPath: string): string[] {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return db.prepare(`select id from openai_files order by id`).all().map((r) => String(r.id));
  } finally {
    db.close();
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe("with no configuration", () => {
  let cwd: string;
  let server: ServerProcess;
  const clients: FilesTestClient[] = [];
  const track = <T extends FilesTestClient>(c: T): T => (clients.push(c), c);
  const storageDir = () => join(cwd, "data", "files");

  beforeAll(async () => {
    cwd = await tempDir("embedded-default");
    server = await startServer({ cwd });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    expect(await server?.stop()).toBe(0);
  });

  it("listens, reports the embedded stores, and is ready", async () => {
    const listening = server.output
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.msg === "listening");
    expect(listening).toMatchObject({ host: "127.0.0.1", port: server.port, storage: "inline::localfs", metadata: "sqlite" });
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });

  it.each([
    ["connect-node gRPC", (url: string) => connectClient(url, "grpc")],
    ["@grpc/grpc-js", (url: string) => grpcJsClient(url)],
  ])("round trip through %s: bytes under <cwd>/data/files, row in <cwd>/data/files.db", async (_name, make) => {
    const client = track(make(server.baseUrl));
    const data = randomBytes(3 * MiB + 17);
    const file = await client.upload(
      { filename: "local.bin", purpose: FilePurpose.ASSISTANTS, sizeBytes: BigInt(data.length), sha256: sha256(data) },
      chunked(data, 64 * 1024),
    );
    expect(file).toMatchObject({ bytes: BigInt(data.length), filename: "local.bin", sha256: sha256(data), status: FileStatus.PROCESSED });

    // The object is a plain file named by the id in the storage dir, holding exactly the bytes.
    const onDisk = join(storageDir(), file.id);
    expect(sha256(await readFile(onDisk))).toBe(sha256(data));
    expect((await stat(join(cwd, "data", "files.db"))).isFile()).toBe(true);
    expect(sqliteIds(join(cwd, "data", "files.db"))).toContain(file.id);

    const download = await client.download({ fileId: file.id });
    expect(download.file?.id).toBe(file.id);
    expect(sha256(download.data)).toBe(sha256(data));
    expect((await client.download({ fileId: file.id, offset: 5n, length: 10n })).data).toEqual(data.subarray(5, 15));
    expect(await client.get(file.id)).toEqual(file);
    expect((await client.list({})).data.map((f) => f.id)).toContain(file.id);

    expect(await client.delete(file.id)).toMatchObject({ id: file.id, deleted: true });
    expect(existsSync(onDisk)).toBe(false);
    expect(sqliteIds(join(cwd, "data", "files.db"))).not.toContain(file.id);
    expect((await rejection(client.get(file.id))).code).toBe(Code.NotFound);

    expect(await entries(join(storageDir(), ".tmp"))).toEqual([]);
  });

  it("leaves no temp files behind after rejected and cancelled uploads", async () => {
    const client = track(connectClient(server.baseUrl));
    const objects = async () => (await entries(storageDir())).filter((n) => n !== ".tmp").sort();
    const data = randomBytes(2 * MiB);
    const wrong = await rejection(client.upload({ filename: "x", purpose: FilePurpose.BATCH, sha256: sha256(Buffer.from("other")) }, chunked(data)));
    expect(wrong.code).toBe(Code.InvalidArgument);
    expect(await entries(join(storageDir(), ".tmp"))).toEqual([]);
    expect(await objects()).toEqual([]);
    expect(sqliteIds(join(cwd, "data", "files.db"))).toEqual([]);

    const controller = new AbortController();
    const sent: Buffer[] = [];
    async function* slowly() {
      for (let i = 0; i < 4; i++) {
        const chunk = randomBytes(MiB);
        sent.push(chunk);
        yield chunk;
      }
      setTimeout(() => controller.abort(), 300);
      await new Promise(() => {}); // never ends the stream itself: only the cancel stops it
    }
    const cancelled = await rejection(client.upload({ filename: "cancelled.bin", purpose: FilePurpose.BATCH }, slowly(), controller.signal));
    expect(cancelled.code).toBe(Code.Canceled);

    // Node's http2 Http2Stream.close(CANCEL), which both clients use to cancel, ends the request
    // stream (END_STREAM) before it sends RST_STREAM, so the server may see a complete request
    // and commit it before the reset arrives; gRPC cancellation is not a rollback. What must
    // always hold: no temp file, and objects and rows agree (no orphan either way).
    await eventually(async () => {
      expect(await entries(join(storageDir(), ".tmp"))).toEqual([]);
      expect(await objects()).toEqual(sqliteIds(join(cwd, "data", "files.db")));
    });
    const listed = (await client.list({})).data;
    expect(listed.map((f) => f.id).sort()).toEqual(await objects());
    for (const file of listed) {
      // Committed despite the cancel: then it holds exactly the bytes that were sent.
      expect(file.filename).toBe("cancelled.bin");
      expect(sha256((await client.download({ fileId: file.id })).data)).toBe(sha256(Buffer.concat(sent)));
      await client.delete(file.id);
    }
    expect(await objects()).toEqual([]);
  });

  it("keeps files across a restart in the same cwd", async () => {
    const client = track(grpcJsClient(server.baseUrl));
    const data = randomBytes(700_000);
    const file: File = await client.upload({ filename: "kept.bin", purpose: FilePurpose.USER_DATA }, chunked(data));

    expect(await server.stop()).toBe(0);
    server = await startServer({ cwd });

    const after = track(connectClient(server.baseUrl));
    expect(await after.get(file.id)).toEqual(file);
    expect(sha256((await after.download({ fileId: file.id })).data)).toBe(sha256(data));
    expect((await after.list({})).data.map((f) => f.id)).toEqual([file.id]);
    expect(await entries(join(storageDir(), ".tmp"))).toEqual([]);
  });
});

describe("the PORT environment variable", () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });

  it("is the port when --port is not given", async () => {
    const cwd = await tempDir("embedded-port-env");
    const port = await freePort();
    const { command, args } = serverCommand([]);
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), LOG_LEVEL: "info" };
    delete env.FILES_CONFIG;
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let output = "";
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not listening within 60 s:\n${output}`)), 60_000);
      const onData = (d: Buffer) => {
        output += d.toString();
        // Complete lines only: the last piece may be half a JSON log line.
        for (const line of output.split("\n").slice(0, -1)) {
          if (!line.startsWith("{")) continue;
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry.msg === "listening") {
            clearTimeout(timer);
            resolve(entry);
          }
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", (code) => reject(new Error(`exited with ${code} before listening:\n${output}`)));
    });
    expect(listening.port).toBe(port);
    const client = connectClient(`http://127.0.0.1:${port}`);
    const file = await client.upload({ filename: "p.txt", purpose: FilePurpose.USER_DATA }, [Buffer.from("port")]);
    expect((await client.download({ fileId: file.id })).data.toString()).toBe("port");

    const code = await new Promise<number | null>((resolve) => {
      child.once("exit", (c) => resolve(c));
      child.kill("SIGTERM");
    });
    expect(code).toBe(0);
  });

  it("is used (and fails clearly) when that port is taken", async () => {
    const cwd = await tempDir("embedded-port-taken");
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const { code, output } = await runServerToExit({ cwd, env: { PORT: String(port) } });
      expect(code).not.toBe(0);
      expect(output).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(output).toContain("EADDRINUSE");
      expect(output).not.toMatch(/^\s+at /m);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it("is rejected with a message when it is not a port number", async () => {
    const cwd = await tempDir("embedded-port-bad");
    const { code, output } = await runServerToExit({ cwd, env: { PORT: "eighty" } });
    expect(code).not.toBe(0);
    expect(output).toMatch(/port 'eighty' is not a port number/);
    expect(output).not.toMatch(/^\s+at /m);
  });

  it("loses to --port", async () => {
    const cwd = await tempDir("embedded-port-flag");
    const envPort = await freePort();
    const server = await startServer({ cwd, env: { PORT: String(envPort) } }); // startServer passes --port 0
    try {
      expect(server.port).not.toBe(envPort);
      expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
