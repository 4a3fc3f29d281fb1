/**
 * Helpers tests use to reach the services provisioned by `global-setup.ts`.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs/promises";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import {
  CreateBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { inject } from "vitest";

export function testS3Endpoint(): string {
  const endpoint = inject("s3Endpoint");
  if (!endpoint) throw new Error("s3Endpoint was not provided: is test/support/global-setup.ts configured as globalSetup?");
  return endpoint;
}

/** The S3 implementation behind testS3Endpoint(): "moto", "s3proxy", or "external" (S3_TEST_ENDPOINT). */
export function testS3Store(): "moto" | "s3proxy" | "external" {
  return inject("s3Store") ?? "moto";
}

export function testPgUrl(): string {
  const url = inject("pgUrl");
  if (!url) throw new Error("pgUrl was not provided: is test/support/global-setup.ts configured as globalSetup?");
  return url;
}

/** An S3 client for the test endpoint (fake credentials unless AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are set). */
export function testS3Client(): S3Client {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  const credentials =
    accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}) }
      : { accessKeyId: "test", secretAccessKey: "test" };
  return new S3Client({
    endpoint: testS3Endpoint(),
    region: "us-east-1",
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    credentials,
  });
}

/** Lowercase [a-z0-9] words of `label` joined by `sep`, at most `max` characters. */
function slug(label: string, sep: string, max: number): string {
  const s = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, sep)
    .slice(0, max)
    .replace(new RegExp(`^\\${sep}+|\\${sep}+$`, "g"), "");
  return s || "test";
}

function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
}

/** Creates a bucket with a unique, valid name derived from `label` and returns the name. */
export async function createTestBucket(label: string): Promise<string> {
  // 63 chars max: "t-" + slug (<= 40) + "-" + suffix (~16)
  const name = `t-${slug(label, "-", 40)}-${uniqueSuffix()}`;
  const client = testS3Client();
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}

/**
 * Every object key in `bucket` (under `prefix`), following continuation tokens: the objects S3
 * holds, as AWS lists them. s3proxy's filesystem provider also lists each directory as a key
 * ending in "/", and each multipart upload in progress as `<uploadId>` and `.mpus-<uploadId>-...`
 * keys: those are left out (an upload left open is what `listMultipartUploads` is for).
 */
export async function listAllKeys(bucket: string, prefix?: string): Promise<string[]> {
  const client = testS3Client();
  const keys: string[] = [];
  const s3proxy = testS3Store() === "s3proxy";
  const openUploads = s3proxy ? new Set((await listMultipartUploads(bucket)).map((u) => u.uploadId)) : undefined;
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || (s3proxy && isS3ProxyArtefact(o.Key, openUploads!))) continue;
        keys.push(o.Key);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } finally {
    client.destroy();
  }
  return keys;
}

function isS3ProxyArtefact(key: string, openUploads: Set<string>): boolean {
  if (key.endsWith("/") || openUploads.has(key)) return true;
  const upload = /^\.mpus-([0-9a-f-]{36})-/.exec(key);
  return upload !== null && openUploads.has(upload[1]!);
}

/** Every multipart upload still in progress in `bucket`. */
export async function listMultipartUploads(bucket: string): Promise<{ key: string; uploadId: string }[]> {
  const client = testS3Client();
  const uploads: { key: string; uploadId: string }[] = [];
  try {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await client.send(
        new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key !== undefined && u.UploadId !== undefined) uploads.push({ key: u.Key, uploadId: u.UploadId });
      }
      if (!page.IsTruncated || (!page.NextKeyMarker && !page.NextUploadIdMarker)) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  } finally {
    client.destroy();
  }
  return uploads;
}

/** The subset of the untyped `pg` package used here. */
interface PgClient {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}
interface PgModule {
  Client: new (config: { connectionString: string }) => PgClient;
}
let pgModule: PgModule | undefined;
function loadPg(): PgModule {
  pgModule ??= createRequire(import.meta.url)("pg") as PgModule;
  return pgModule;
}

/** Creates a fresh, uniquely named database on the test server and returns its URL. */
export async function createTestDatabase(label: string): Promise<string> {
  const name = `t_${slug(label, "_", 40)}_${uniqueSuffix()}`; // < 63 chars, [a-z0-9_]
  const adminUrl = testPgUrl();
  const { Client } = loadPg();
  for (let attempt = 1; ; attempt++) {
    const client = new Client({ connectionString: adminUrl });
    try {
      await client.connect();
      await client.query(`CREATE DATABASE "${name}"`);
      break;
    } catch (err) {
      // 55006: "source database template1 is being accessed by other users" under concurrency.
      if ((err as { code?: string }).code === "55006" && attempt < 10) {
        await new Promise((r) => setTimeout(r, 100 * attempt));
        continue;
      }
      throw new Error(`createTestDatabase(${label}): CREATE DATABASE ${name} failed: ${(err as Error).message}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates a unique empty directory under os.tmpdir(). */
export async function tempDir(label: string): Promise<string> {
  return await fs.mkdtemp(path.join(os.tmpdir(), `files-test-${slug(label, "-", 40)}-`));
}
