/**
 * The `files` command-line client, run as its compiled binary (what `bin` installs) against a live
 * server on moto + SQLite: every command, its JSON and human output, exit codes and error lines.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, listAllKeys, tempDir, testS3Client, testS3Endpoint } from "../support/env.js";
import { connectClient } from "../support/grpc-clients.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { MiB, sha256 } from "../support/test-helpers.js";

const CLI = join(REPO_ROOT, "dist/src/cli/main.js");

interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the compiled CLI with pipes (so neither stdout nor stderr is a TTY). */
function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (!options.env?.FILES_URL) delete env.FILES_URL;
  if (!options.env?.FILES_TOKEN) delete env.FILES_TOKEN;
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => stdout.push(d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }));
  });
}

/** Fails with the CLI's own output when it did not exit as expected. */
function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(`expected exit code ${code}, got ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const FILE_KEYS = ["bytes", "created_at", "expires_at", "filename", "id", "mime_type", "object", "purpose", "sha256", "status"];

describe("files CLI", () => {
  let server: ServerProcess;
  let bucket: string;
  let dir: string;
  let url: string;
  const data = randomBytes(6 * MiB + 12_345);
  let dataPath: string;
  let uploaded: Record<string, unknown>;
  let id: string;

  beforeAll(async () => {
    bucket = await createTestBucket("cli");
    dir = await tempDir("cli");
    server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }) });
    url = server.baseUrl;
    dataPath = join(dir, "data.bin");
    await writeFile(dataPath, data);
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("uploads a 6 MiB file with --json, printing the new file and only a one-line summary on a non-TTY", async () => {
    const result = await runCli(["upload", dataPath, "--url", url, "--json", "--purpose", "assistants", "--mime-type", "application/x-test"]);
    expectExit(result, 0);
    uploaded = JSON.parse(result.stdout.toString()) as Record<string, unknown>;
    id = uploaded.id as string;
    expect(Object.keys(uploaded).sort()).toEqual(FILE_KEYS);
    expect(uploaded).toMatchObject({
      object: "file",
      bytes: data.length,
      filename: "data.bin",
      purpose: "assistants",
      status: "processed",
      expires_at: null,
      sha256: sha256(data),
      mime_type: "application/x-test",
    });
    expect(id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(uploaded.created_at).toBeTypeOf("number");
    // No progress-bar redraws or escape sequences when not on a terminal: one summary line on stderr.
    expect(result.stdout.includes("\r")).toBe(false);
    expect(result.stderr).not.toMatch(/[\r\x1b]/);
    expect(result.stderr).toMatch(/^uploaded data\.bin: 6\.0 MiB in [\d.]+ s \([\d.]+ [KMG]?i?B\/s\)\n$/);

    // An independent client sees the same file.
    const file = await connectClient(url).get(id);
    expect(file.sha256).toBe(sha256(data));
    expect(Number(file.bytes)).toBe(data.length);
  });

  it("uploads with human output, an expiry, and the default purpose; and an empty file", async () => {
    const path = join(dir, "notes.txt");
    await writeFile(path, "hello\n");
    const result = await runCli(["upload", path, "--url", url, "--expires-after", "7200"]);
    expectExit(result, 0);
    const text = result.stdout.toString();
    expect(text).toMatch(/^id: {9}file-[0-9a-f]{32}$/m);
    expect(text).toMatch(/^filename: {3}notes\.txt$/m);
    expect(text).toMatch(/^bytes: {6}6 \(6 B\)$/m);
    expect(text).toMatch(/^purpose: {4}user_data$/m);
    expect(text).toMatch(/^mime_type: {2}text\/plain$/m);
    expect(text).toMatch(/^expires_at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/m);
    expect(text).toContain(`sha256:     ${sha256(Buffer.from("hello\n"))}`);

    const empty = join(dir, "empty.bin");
    await writeFile(empty, "");
    const up = await runCli(["upload", empty, "--url", url, "--json"]);
    expectExit(up, 0);
    const file = JSON.parse(up.stdout.toString()) as { id: string; bytes: number; sha256: string };
    expect(file).toMatchObject({ bytes: 0, sha256: sha256(Buffer.alloc(0)) });
    const down = await runCli(["download", file.id, "--url", url, "-o", "-"]);
    expectExit(down, 0);
    expect(down.stdout.length).toBe(0);
  });

  it("reports the server's message for an invalid upload (exit 1) and a missing local file", async () => {
    const bad = await runCli(["upload", dataPath, "--url", url, "--expires-after", "5"]);
    expectExit(bad, 1);
    expect(bad.stderr).toMatch(/^files: expires_after\.seconds .*3600.*\n$/);
    const missing = await runCli(["upload", join(dir, "nope.bin"), "--url", url]);
    expectExit(missing, 1);
    expect(missing.stderr).toBe(`files: cannot read ${join(dir, "nope.bin")}: no such file or directory\n`);
  });

  it("lists files as an aligned table and as an OpenAI-style list object", async () => {
    const human = await runCli(["list", "--url", url]);
    expectExit(human, 0);
    const lines = human.stdout.toString().trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +SIZE +CREATED +PURPOSE +FILENAME$/);
    const row = lines.find((l) => l.startsWith(id));
    expect(row).toMatch(new RegExp(`^${id} +6\\.0 MiB +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC +assistants +data\\.bin$`));
    // Columns line up: FILENAME starts at the same offset on every row.
    const at = lines[0]!.indexOf("FILENAME");
    for (const line of lines.slice(1)) expect(line.slice(at - 2, at)).toBe("  ");

    const json = await runCli(["list", "--url", url, "--json"]);
    expectExit(json, 0);
    const page = JSON.parse(json.stdout.toString()) as { object: string; data: Record<string, unknown>[]; has_more: boolean; first_id: string; last_id: string };
    expect(Object.keys(page).sort()).toEqual(["data", "first_id", "has_more", "last_id", "object"]);
    expect(page.object).toBe("list");
    expect(page.has_more).toBe(false);
    expect(page.data.find((f) => f.id === id)).toEqual(uploaded);
    expect(page.first_id).toBe(page.data[0]!.id);
    expect(page.last_id).toBe(page.data.at(-1)!.id);
    const total = page.data.length;
    expect(total).toBeGreaterThanOrEqual(3);

    // One page of one, oldest first (ties in the second broken by id, so the reverse of desc), then every page.
    const first = JSON.parse((await runCli(["list", "--url", url, "--json", "--limit", "1", "--order", "asc"])).stdout.toString()) as typeof page;
    expect(first.data.map((f) => f.id)).toEqual([page.data.at(-1)!.id]);
    expect(first.has_more).toBe(true);
    const all = JSON.parse((await runCli(["list", "--url", url, "--json", "--limit", "1", "--all"])).stdout.toString()) as typeof page;
    expect(all.data.map((f) => f.id)).toEqual(page.data.map((f) => f.id));
    expect(all.has_more).toBe(false);
    const filtered = JSON.parse((await runCli(["list", "--url", url, "--json", "--purpose", "assistants"])).stdout.toString()) as typeof page;
    expect(filtered.data.map((f) => f.id)).toEqual([id]);

    const more = await runCli(["list", "--url", url, "--limit", "1"]);
    expectExit(more, 0);
    expect(more.stderr).toContain("--all");
  });

  it("gets a file as key: value lines and as JSON (FILES_URL as the default --url)", async () => {
    const human = await runCli(["get", id], { env: { FILES_URL: url } });
    expectExit(human, 0);
    const text = human.stdout.toString();
    expect(text).toContain(`id:         ${id}\n`);
    expect(text).toContain(`bytes:      ${data.length} (6.0 MiB)\n`);
    expect(text).toContain(`sha256:     ${sha256(data)}\n`);
    expect(text).toContain("status:     processed\n");
    expect(text).toContain("expires_at: never\n");

    const json = await runCli(["get", id, "--json", "--url", url]);
    expectExit(json, 0);
    expect(JSON.parse(json.stdout.toString())).toEqual(uploaded);
  });

  it("downloads to a path via a temp file, verified, leaving nothing else behind", async () => {
    const out = await tempDir("cli-download");
    const target = join(out, "copy.bin");
    const result = await runCli(["download", id, "--url", url, "-o", target]);
    expectExit(result, 0);
    const copy = await readFile(target);
    expect(copy.length).toBe(data.length);
    expect(sha256(copy)).toBe(sha256(data));
    expect(await readdir(out)).toEqual(["copy.bin"]);
    expect(result.stdout.toString()).toBe(`${target}: 6.0 MiB, SHA-256 verified\n`);
    expect(result.stderr).not.toMatch(/[\r\x1b]/);
    expect(result.stderr).toMatch(/^downloaded .*copy\.bin: 6\.0 MiB in /);

    // -o PATH replaces an existing file; a name taken from the server never does.
    await writeFile(target, "old");
    expectExit(await runCli(["download", id, "--url", url, "-o", target]), 0);
    expect(sha256(await readFile(target))).toBe(sha256(data));
    const intoDir = await runCli(["download", id, "--url", url, "-o", out]);
    expectExit(intoDir, 0);
    expect(sha256(await readFile(join(out, "data.bin")))).toBe(sha256(data));
    const again = await runCli(["download", id, "--url", url], { cwd: out });
    expectExit(again, 1);
    expect(again.stderr).toMatch(/^files: data\.bin already exists/);
    expect((await readdir(out)).sort()).toEqual(["copy.bin", "data.bin"]);

    const json = await runCli(["download", id, "--url", url, "-o", join(out, "j.bin"), "--json"]);
    expectExit(json, 0);
    expect(JSON.parse(json.stdout.toString())).toEqual({
      id,
      path: join(out, "j.bin"),
      offset: 0,
      bytes: data.length,
      sha256: sha256(data),
      verified: true,
    });
  });

  it("downloads byte ranges with --range and --offset/--length, and the whole file to stdout", async () => {
    const range = await runCli(["download", id, "--url", url, "--range", "1000-1999", "-o", "-"]);
    expectExit(range, 0);
    expect(range.stdout.equals(data.subarray(1000, 2000))).toBe(true);

    // Across the 1 MiB boundary to the end, into a file.
    const out = await tempDir("cli-range");
    const tail = await runCli(["download", id, "--url", url, "--offset", String(MiB - 7), "-o", join(out, "tail.bin")]);
    expectExit(tail, 0);
    expect((await readFile(join(out, "tail.bin"))).equals(data.subarray(MiB - 7))).toBe(true);

    const slice = await runCli(["download", id, "--url", url, "--offset", "5", "--length", "3000000", "-o", "-"]);
    expectExit(slice, 0);
    expect(slice.stdout.equals(data.subarray(5, 3_000_005))).toBe(true);

    const openEnd = await runCli(["download", id, "--url", url, "--range", `${data.length - 10}-`, "-o", "-"]);
    expectExit(openEnd, 0);
    expect(openEnd.stdout.equals(data.subarray(data.length - 10))).toBe(true);

    const whole = await runCli(["download", id, "--url", url, "-o", "-"]);
    expectExit(whole, 0);
    expect(whole.stdout.length).toBe(data.length);
    expect(sha256(whole.stdout)).toBe(sha256(data));
    expect(whole.stderr).not.toMatch(/[\r\x1b]/);

    const past = await runCli(["download", id, "--url", url, "--offset", String(data.length + 1), "-o", "-"]);
    expectExit(past, 1);
    expect(past.stderr.split("\n")).toHaveLength(2);
  });

  it("downloads a file larger than one 32 MiB download window, whole and as a range across windows", async () => {
    const big = randomBytes(40 * MiB + 3);
    const path = join(dir, "big.bin");
    await writeFile(path, big);
    const up = await runCli(["upload", path, "--url", url, "--json"]);
    expectExit(up, 0);
    const bigId = (JSON.parse(up.stdout.toString()) as { id: string }).id;
    const out = await tempDir("cli-big");
    const whole = await runCli(["download", bigId, "--url", url, "-o", join(out, "big.bin")]);
    expectExit(whole, 0);
    expect(sha256(await readFile(join(out, "big.bin")))).toBe(sha256(big));
    const across = await runCli(["download", bigId, "--url", url, "--range", `${30 * MiB}-${40 * MiB}`, "-o", "-"]);
    expectExit(across, 0);
    expect(across.stdout.equals(big.subarray(30 * MiB, 40 * MiB + 1))).toBe(true);
    expectExit(await runCli(["delete", bigId, "--url", url]), 0);
  });

  it("fails loudly on a SHA-256 mismatch and keeps nothing", async () => {
    const original = randomBytes(200_000);
    const path = join(dir, "victim.bin");
    await writeFile(path, original);
    const up = await runCli(["upload", path, "--url", url, "--json"]);
    expectExit(up, 0);
    const victim = (JSON.parse(up.stdout.toString()) as { id: string }).id;
    // Corrupt the stored object behind the service's back (same size, other bytes).
    expect(await listAllKeys(bucket)).toContain(victim);
    const s3 = testS3Client();
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: victim, Body: randomBytes(original.length) }));
    } finally {
      s3.destroy();
    }
    const out = await tempDir("cli-corrupt");
    const result = await runCli(["download", victim, "--url", url, "-o", join(out, "v.bin")]);
    expectExit(result, 1);
    expect(result.stderr).toMatch(new RegExp(`^files: SHA-256 mismatch for ${victim}: expected ${sha256(original)}, received [0-9a-f]{64}; nothing was saved\\n$`, "m"));
    expect(await readdir(out)).toEqual([]);
  });

  it("deletes a file; afterwards get and download say 'no such file' with exit code 1", async () => {
    const result = await runCli(["delete", id, "--url", url]);
    expectExit(result, 0);
    expect(result.stdout.toString()).toBe(`deleted ${id}\n`);

    for (const args of [["get", id], ["download", id, "-o", "-"], ["delete", id]]) {
      const gone = await runCli([...args, "--url", url]);
      expectExit(gone, 1);
      expect(gone.stderr).toBe(`files: no such file: ${id}\n`);
      expect(gone.stdout.length).toBe(0);
    }
  });

  it("says it cannot reach an unreachable --url, in one line, with exit code 1", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    for (const args of [["list"], ["get", "file-00000000000000000000000000000000"], ["upload", dataPath]]) {
      const result = await runCli([...args, "--url", dead]);
      expectExit(result, 1);
      expect(result.stderr).toMatch(new RegExp(`^files: cannot reach the service at ${dead.replaceAll(".", "\\.")}\\b.*\\n$`));
      expect(result.stderr).not.toContain("    at ");
    }
  });

  it("sends --token as a bearer token and explains an authentication failure", async () => {
    // A stand-in gRPC server (h2c) that records the header and refuses the call.
    const headers: (string | undefined)[] = [];
    const fake = http2.createServer();
    fake.on("stream", (stream: http2.ServerHttp2Stream, h) => {
      headers.push(h.authorization);
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "16", "grpc-message": "bad token" }, { endStream: true });
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    try {
      const fakeUrl = `http://127.0.0.1:${(fake.address() as net.AddressInfo).port}`;
      const result = await runCli(["list", "--url", fakeUrl, "--token", "s3cret"]);
      expectExit(result, 1);
      expect(result.stderr).toBe("files: not authenticated: bad token (pass --token or set FILES_TOKEN)\n");
      expectExit(await runCli(["list", "--url", fakeUrl], { env: { FILES_TOKEN: "from-env" } }), 1);
      expectExit(await runCli(["list", "--url", fakeUrl]), 1);
      expect(headers).toEqual(["Bearer s3cret", "Bearer from-env", undefined]);
    } finally {
      await new Promise((r) => fake.close(r));
    }
  });

  it("answers bad usage with exit code 2 and usage text, --help and --version with 0", async () => {
    const none = await runCli([]);
    expectExit(none, 2);
    expect(none.stderr).toMatch(/^files: a command is required\nUsage: files COMMAND/);

    const cases: [string[], RegExp][] = [
      [["frobnicate"], /^files: unknown command 'frobnicate'\nUsage: files COMMAND/],
      [["upload"], /^files: missing PATH\nUsage: files upload PATH/],
      [["upload", dataPath, "--bogus"], /^files: unknown option '--bogus'\nUsage: files upload PATH/],
      [["upload", dataPath, "--purpose", "nonsense"], /^files: unknown purpose 'nonsense'/],
      [["get", "a", "b"], /^files: unexpected argument 'b'\nUsage: files get ID/],
      [["list", "--order", "sideways"], /^files: --order must be 'asc' or 'desc'/],
      [["list", "--limit", "0"], /^files: --limit must be an integer from 1 to 10000/],
      [["download", "x", "--range", "9-3"], /^files: --range 9-3: the end comes before the start\nUsage: files download ID/],
      [["download", "x", "--range", "1-2", "--offset", "3"], /^files: --range cannot be combined/],
      [["list", "--url", "ftp://example"], /^files: --url must be an http:\/\/ or https:\/\/ URL/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args);
      expectExit(result, 2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout.length).toBe(0);
    }

    const help = await runCli(["--help"]);
    expectExit(help, 0);
    for (const command of ["upload", "list", "get", "download", "delete"]) expect(help.stdout.toString()).toMatch(new RegExp(`^  ${command} `, "m"));
    for (const command of ["upload", "list", "get", "download", "delete"]) {
      const sub = await runCli([command, "--help"]);
      expectExit(sub, 0);
      expect(sub.stdout.toString()).toMatch(new RegExp(`^Usage: files ${command}\\b`));
      expect(sub.stdout.toString()).toContain("--url URL");
    }
    const version = await runCli(["--version"]);
    expectExit(version, 0);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string; bin: Record<string, string> };
    expect(version.stdout.toString()).toBe(`files ${pkg.version}\n`);
    // The bin entry points at the binary these tests run.
    expect(join(REPO_ROOT, pkg.bin.files!)).toBe(CLI);
    expect(existsSync(CLI)).toBe(true);
    expect(readFileSync(CLI, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
});
