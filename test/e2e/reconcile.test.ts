/**
 * `reconcile` as an operator runs it: the real command, as a child process, against a bucket and
 * a database written by the real server, after damage done behind the server's back.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, createTestDatabase, listAllKeys, listMultipartUploads, tempDir, testS3Client, testS3Endpoint, testS3Store } from "../support/env.js";
import { runReconcile, writeConfigFile, type JsonReport, type MetadataStoreYaml } from "../support/reconcile-process.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const PREFIX = "tenants/acme/";
const fileKey = () => `file-${randomBytes(16).toString("hex")}`;

const backends: [string, (label: string) => Promise<MetadataStoreYaml>][] = [
  ["SQLite", async (label) => ({ type: "sqlite", db_path: join(await tempDir(label), "files.db") })],
  ["PostgreSQL", async (label) => ({ type: "postgres", url: await createTestDatabase(label) })],
];

describe("npm run reconcile", () => {
  it("is a package script that builds first, like start", async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.reconcile).toBe("node dist/src/maintenance/reconcile-command.js");
    expect(pkg.scripts.prereconcile).toBe(pkg.scripts.prestart);
  });

  it("answers usage and configuration errors with exit code 2 and a clear message", async () => {
    const bucket = `t-never-created-${randomBytes(4).toString("hex")}`;
    const config = await writeConfigFile(
      s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(await tempDir("reconcile-usage"), "f.db") }, { auto_create_bucket: true }),
    );
    const cases: [string[], RegExp][] = [
      [["--config", config], /exactly one of --dry-run and --apply/],
      [["--dry-run", "--apply", "--config", config], /exactly one of --dry-run and --apply/],
      [["--dry-run", "--grace-seconds", "-5", "--config", config], /grace-seconds/],
      [["--apply", "--grace-seconds", "1h", "--config", config], /--grace-seconds must be a whole number/],
      [["--dry-run", "--bogus"], /bogus/],
      [["--dry-run", "--config", "/nonexistent/files.yaml"], /cannot read config file \/nonexistent\/files.yaml/],
    ];
    for (const [args, message] of cases) {
      const run = await runReconcile(args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(message);
      expect(run.stdout).toBe("");
    }
    // A missing bucket is an error, even when the config lets the server create it.
    const missing = await runReconcile(["--dry-run", "--config", config]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(bucket);
    const s3 = testS3Client();
    try {
      await expect(s3.send(new HeadBucketCommand({ Bucket: bucket }))).rejects.toThrow();
    } finally {
      s3.destroy();
    }
    const help = await runReconcile(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--grace-seconds");
  });
});

for (const [name, metadataStoreFor] of backends) {
  describe(`reconcile on S3 (${testS3Store()}) with ${name}, key prefix ${PREFIX}`, () => {
    let bucket: string;
    let configPath: string;
    let server: ServerProcess;
    let client: OpenAI;
    const s3 = testS3Client();

    beforeAll(async () => {
      bucket = await createTestBucket(`reconcile ${name}`);
      const config = s3ProviderConfig(testS3Endpoint(), bucket, await metadataStoreFor(`reconcile ${name}`), { key_prefix: PREFIX });
      configPath = await writeConfigFile(config);
      server = await startServer({ config });
      client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
    });
    afterAll(async () => {
      await server?.stop();
      s3.destroy();
    });

    const put = (key: string, body: Buffer | string = randomBytes(100)) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    const reconcile = (...args: string[]) => runReconcile([...args, "--config", configPath]);
    const jsonOf = (run: { stdout: string }) => JSON.parse(run.stdout) as JsonReport;

    it("finds what was damaged, repairs it (respecting the grace period), and leaves other keys alone", async () => {
      const contents = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
      const files = [];
      for (const [i, data] of contents.entries()) {
        files.push(await client.files.create({ file: await toFile(data, `f${i}.bin`), purpose: "assistants" }));
      }
      // A pending upload's part is a known object, not an orphan.
      const partData = randomBytes(500);
      const upload = await client.uploads.create({ bytes: partData.length, filename: "later.bin", purpose: "assistants", mime_type: "application/octet-stream" });
      const part = await client.uploads.parts.create(upload.id, { data: await toFile(partData, "part") });

      const clean = await reconcile("--dry-run");
      expect(clean.stderr).toBe("");
      expect(clean.code).toBe(0);
      expect(clean.stdout).toMatch(/Checked 4 objects, 3 file rows and 1 upload parts/);
      expect(clean.stdout).toContain("Result: consistent");

      // The damage: an object no row names, a row whose object is gone, an unfinished multipart
      // upload, a key under the prefix that is not ours, and keys outside the prefix.
      const orphan = `${PREFIX}${fileKey()}`;
      await put(orphan);
      const lost = files[1]!;
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}${lost.id}` }));
      const unfinishedKey = `${PREFIX}${fileKey()}`;
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: unfinishedKey }));
      await s3.send(new UploadPartCommand({ Bucket: bucket, Key: unfinishedKey, UploadId, PartNumber: 1, Body: randomBytes(1000) }));
      const unknown = `${PREFIX}notes.txt`;
      await put(unknown, "not ours");
      const outside = [`other/${fileKey()}`, fileKey(), "README.md"];
      for (const key of outside) await put(key);

      const dry = await reconcile("--dry-run");
      expect(dry.code).toBe(1);
      expect(dry.stdout).toContain(orphan);
      expect(dry.stdout).toContain(`${lost.id} -> ${PREFIX}${lost.id}`);
      expect(dry.stdout).toContain(unfinishedKey);
      expect(dry.stdout).toContain(unknown);
      expect(dry.stdout).toMatch(/3 problem\(s\) found/);
      for (const key of outside) expect(dry.stdout).not.toContain(key);

      // The same, as JSON, with the config from FILES_CONFIG.
      const json = await runReconcile(["--dry-run", "--json"], { FILES_CONFIG: configPath });
      expect(json.code).toBe(1);
      const report = jsonOf(json).report;
      expect(report.orphanObjects.map((o) => [o.key, o.recent])).toEqual([[orphan, true]]);
      expect(report.missingObjects).toEqual([{ id: lost.id, storageKey: `${PREFIX}${lost.id}` }]);
      expect(report.incompleteWrites.map((w) => [w.key, w.id])).toEqual([[unfinishedKey, UploadId]]);
      expect(report.unknownObjects.map((o) => o.key)).toEqual([unknown]);
      expect(report).toMatchObject({ objects: 5, fileRows: 3, partRows: 1 });
      // A dry run changed nothing.
      expect((await listAllKeys(bucket)).sort()).toEqual(
        [...files.filter((f) => f !== lost).map((f) => `${PREFIX}${f.id}`), `${PREFIX}uploads/${upload.id}/${part.id}`, orphan, unknown, ...outside].sort(),
      );

      // Within the grace period (default one hour) the fresh orphan and upload are left for later;
      // the row whose object is gone is removed at once.
      const first = await reconcile("--apply");
      expect(first.code).toBe(1);
      expect(first.stdout).toMatch(/removed 1 row\(s\) whose object was missing/);
      expect(first.stdout).toMatch(/left 2 younger than the grace period \(3600 s\)/);
      expect(await listAllKeys(bucket)).toContain(orphan);
      expect((await listMultipartUploads(bucket)).map((u) => u.key)).toEqual([unfinishedKey]);
      await expect(client.files.retrieve(lost.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      const listed = [];
      for await (const f of client.files.list()) listed.push(f.id);
      expect(listed.sort()).toEqual([files[0]!.id, files[2]!.id].sort());

      const second = await reconcile("--apply", "--grace-seconds", "0", "--json");
      expect(second.code).toBe(0);
      const repair = jsonOf(second).repair!;
      expect(repair).toMatchObject({ deletedObjects: [orphan], removedRows: [], deferred: 0, failures: [] });
      expect(repair.abortedWrites.map((w) => w.key)).toEqual([unfinishedKey]);
      expect(await listMultipartUploads(bucket)).toEqual([]);
      expect((await listAllKeys(bucket)).sort()).toEqual(
        [`${PREFIX}${files[0]!.id}`, `${PREFIX}${files[2]!.id}`, `${PREFIX}uploads/${upload.id}/${part.id}`, unknown, ...outside].sort(),
      );

      const after = await reconcile("--dry-run");
      expect(after.code).toBe(0);
      expect(after.stdout).toContain("Result: consistent");
      expect(after.stdout).toContain(unknown); // still reported, still there

      // What was kept still works: the files read back, and the pending upload completes.
      for (const i of [0, 2]) {
        expect(Buffer.from(await (await client.files.content(files[i]!.id)).arrayBuffer()).equals(contents[i]!)).toBe(true);
      }
      const completed = await client.uploads.complete(upload.id, { part_ids: [part.id] });
      expect(Buffer.from(await (await client.files.content(completed.file!.id)).arrayBuffer()).equals(partData)).toBe(true);
    });
  });
}
