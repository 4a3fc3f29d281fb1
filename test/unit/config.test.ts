import { existsSync, readdirSync, readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULT_PORT, loadConfig } from "../../src/config/load-config.js";

const SEED_DIR = join(import.meta.dirname, "../fixtures/seed");
const seed = (name: string) => join(SEED_DIR, `${name}.yaml`);

function writeYaml(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "files-config-")), "config.yaml");
  writeFileSync(path, text);
  return path;
}

describe("the seed document's YAML blocks load verbatim", () => {
  it("basic: S3 with SQLite metadata", () => {
    const config = loadConfig({ configPath: seed("basic"), env: {} });
    expect(config.storage).toMatchObject({ type: "remote::s3", bucket: "my-llama-stack-files", region: "us-east-1" });
    expect(config.storage).toMatchObject({ accessKeyId: undefined, secretAccessKey: undefined, endpointUrl: undefined });
    expect(config.metadataStore).toEqual({ type: "sqlite", dbPath: "./s3_files_metadata.db" });
    expect(config.server.port).toBe(DEFAULT_PORT);
  });

  it("advanced: keys and an endpoint", () => {
    const config = loadConfig({ configPath: seed("advanced"), env: {} });
    expect(config.storage).toMatchObject({
      type: "remote::s3",
      accessKeyId: "YOUR_ACCESS_KEY",
      secretAccessKey: "YOUR_SECRET_KEY",
      endpointUrl: "https://s3.amazonaws.com",
      // A custom endpoint switches to path style and skips aws-chunked checksums.
      forcePathStyle: true,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  });

  it("environment variables: substituted, with empty defaults meaning 'not set'", () => {
    const config = loadConfig({ configPath: seed("environment-variables"), env: { S3_BUCKET_NAME: "from-env-bucket" } });
    expect(config.storage).toMatchObject({
      type: "remote::s3",
      bucket: "from-env-bucket",
      region: "us-east-1",
      accessKeyId: undefined,
      secretAccessKey: undefined,
      endpointUrl: undefined,
      forcePathStyle: false,
      requestChecksumCalculation: "WHEN_SUPPORTED",
    });
    expect(config.metadataStore).toEqual({ type: "sqlite", dbPath: "./data/files.db" });

    const set = loadConfig({
      configPath: seed("environment-variables"),
      env: { S3_BUCKET_NAME: "b-123", AWS_REGION: "eu-west-1", AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", S3_ENDPOINT_URL: "http://127.0.0.1:9000" },
    });
    expect(set.storage).toMatchObject({ region: "eu-west-1", accessKeyId: "k", secretAccessKey: "s", endpointUrl: "http://127.0.0.1:9000" });
  });

  it("environment variables: an unset variable without a default is named", () => {
    expect(() => loadConfig({ configPath: seed("environment-variables"), env: {} })).toThrow(
      /: config\.bucket_name: environment variable S3_BUCKET_NAME is not set/,
    );
  });

  it("IAM roles: no credentials means the default chain", () => {
    const config = loadConfig({ configPath: seed("iam-roles"), env: {} });
    expect(config.storage).toMatchObject({ type: "remote::s3", bucket: "my-bucket", accessKeyId: undefined, secretAccessKey: undefined });
  });

  it("access keys", () => {
    const config = loadConfig({ configPath: seed("access-keys"), env: {} });
    expect(config.storage).toMatchObject({ accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" });
  });

  it("automatic bucket creation", () => {
    const config = loadConfig({ configPath: seed("auto-create-bucket"), env: {} });
    expect(config.storage).toMatchObject({ autoCreateBucket: true });
  });

  it("MinIO", () => {
    const config = loadConfig({ configPath: seed("minio"), env: {} });
    expect(config.storage).toMatchObject({ bucket: "test-bucket", endpointUrl: "http://localhost:9000", forcePathStyle: true });
  });

  // When the seed document sits beside the repository, make sure these fixtures are still its blocks, verbatim.
  const seedDoc = join(import.meta.dirname, "../../../shared/seed/s3-files-provider.md");
  it.runIf(existsSync(seedDoc))("the fixtures are exactly the seed document's YAML blocks", () => {
    const blocks = [...readFileSync(seedDoc, "utf8").matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
    const fixtures = readdirSync(SEED_DIR).map((f) => readFileSync(join(SEED_DIR, f), "utf8"));
    expect(blocks.length).toBe(fixtures.length);
    for (const block of blocks) expect(fixtures).toContain(block);
  });
});

describe("configuration defaults and errors", () => {
  it("no config at all is the embedded default: local files and SQLite on 8321", () => {
    const config = loadConfig({ env: {} });
    expect(config.storage).toEqual({ type: "inline::localfs", storageDir: "./data/files" });
    expect(config.metadataStore).toEqual({ type: "sqlite", dbPath: "./data/files.db" });
    expect(config.server).toMatchObject({ port: 8321, host: "127.0.0.1" });
  });

  it("connection and concurrency limits: defaults, explicit values, and refused values named", () => {
    expect(loadConfig({ env: {} }).server).toMatchObject({
      maxConcurrentUploads: 512,
      maxConcurrentUploadsPerPrincipal: 256,
      headerTimeoutMs: 30_000,
      idleTimeoutMs: 600_000,
    });
    const path = writeYaml(
      "server:\n  limits:\n    max_concurrent_uploads: 8\n    max_concurrent_uploads_per_principal: 2\n    header_timeout_seconds: 5\n    idle_timeout_seconds: 60\n",
    );
    expect(loadConfig({ configPath: path, env: {} }).server).toMatchObject({
      maxConcurrentUploads: 8,
      maxConcurrentUploadsPerPrincipal: 2,
      headerTimeoutMs: 5_000,
      idleTimeoutMs: 60_000,
    });
    for (const [key, value] of [["max_concurrent_uploads", 0], ["header_timeout_seconds", 0], ["idle_timeout_seconds", "soon"]] as const) {
      expect(() => loadConfig({ configPath: writeYaml(`server:\n  limits:\n    ${key}: ${value}\n`), env: {} })).toThrow(
        new RegExp(`server\\.limits\\.${key}`),
      );
    }
  });

  it("the port comes from --port, then PORT, then server.port", () => {
    const path = writeYaml("server:\n  port: 9000\n");
    expect(loadConfig({ configPath: path, env: {} }).server.port).toBe(9000);
    expect(loadConfig({ configPath: path, env: { PORT: "9001" } }).server.port).toBe(9001);
    expect(loadConfig({ configPath: path, port: "9002", env: { PORT: "9001" } }).server.port).toBe(9002);
    expect(() => loadConfig({ configPath: path, port: "http", env: {} })).toThrow(/port 'http' is not a port number/);
  });

  it("postgres metadata stores accept host/port/db/user/password or a url", () => {
    const fields = loadConfig({
      configPath: writeYaml(
        "config:\n  bucket_name: b-1\n  metadata_store:\n    type: postgres\n    host: db.internal\n    port: 5433\n    db: files\n    user: files\n    password: fake-password\n",
      ),
      env: {},
    });
    expect(fields.metadataStore).toEqual({ type: "postgres", url: undefined, host: "db.internal", port: 5433, db: "files", user: "files", password: "fake-password" });
    const url = loadConfig({
      configPath: writeYaml("config:\n  bucket_name: b-1\n  metadata_store:\n    type: postgres\n    url: postgres://u@127.0.0.1/files\n"),
      env: {},
    });
    expect(url.metadataStore).toMatchObject({ type: "postgres", url: "postgres://u@127.0.0.1/files" });
  });

  it("env substitution coerces booleans and numbers", () => {
    const config = loadConfig({
      configPath: writeYaml('config:\n  bucket_name: b-1\n  auto_create_bucket: "${env.AUTO:=false}"\n  part_size_bytes: "${env.PART:=16777216}"\n'),
      env: { AUTO: "true" },
    });
    expect(config.storage).toMatchObject({ autoCreateBucket: true, partSizeBytes: 16777216 });
  });

  it.each([
    ["a typo in a key", "config:\n  bucket_name: b-1\n  bucket_nmae: x\n", /config: Unrecognized key: "bucket_nmae"/],
    ["a misspelt bucket_name in a block without provider_type", "config:\n  bucket_nmae: b-1\n  region: us-east-1\n", /config\.bucket_name: bucket_name is required\n  config: Unrecognized key: "bucket_nmae"$/],
    ["a missing bucket", "provider_type: remote::s3\nconfig:\n  region: us-east-1\n", /config\.bucket_name/],
    ["a bad metadata store type", "config:\n  bucket_name: b-1\n  metadata_store:\n    type: mysql\n", /config\.metadata_store\.type/],
    ["a part size below S3's minimum", "config:\n  bucket_name: b-1\n  part_size_bytes: 1024\n", /config\.part_size_bytes/],
    ["an unknown provider", "provider_type: remote::gcs\n", /provider_type/],
    ["half a key pair", "config:\n  bucket_name: b-1\n  aws_access_key_id: only-the-id\n", /aws_secret_access_key must be given together/],
    ["a bad endpoint", "config:\n  bucket_name: b-1\n  endpoint_url: not a url\n", /config\.endpoint_url/],
  ])("names the field for %s", (_what, yaml, message) => {
    const path = writeYaml(yaml);
    const load = () => loadConfig({ configPath: path, env: {} });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
  });

  it("an unreadable or malformed file is reported with its path", () => {
    expect(() => loadConfig({ configPath: "/nonexistent/files.yaml", env: {} })).toThrow(/cannot read config file \/nonexistent\/files.yaml: ENOENT/);
    const path = writeYaml("config: [unclosed\n");
    expect(() => loadConfig({ configPath: path, env: {} })).toThrow(/is not valid YAML/);
  });
});

describe("S3 options", () => {
  const s3 = (lines: string) => writeYaml(`provider_type: remote::s3\nconfig:\n  bucket_name: b-1\n${lines}`);
  const load = (lines: string) => loadConfig({ configPath: s3(lines), env: {} });

  it("defaults: no encryption header, 10 s connect, 300 s per request, 3 attempts, standard retries", () => {
    const storage = load("");
    expect(storage.storage).toMatchObject({
      sse: undefined,
      sseKmsKeyId: undefined,
      connectTimeoutMs: 10_000,
      requestTimeoutMs: 300_000,
      maxAttempts: 3,
      retryMode: "standard",
      keyPrefix: "",
    });
  });

  it("takes encryption, timeouts (fractions allowed) and the retry policy", () => {
    const storage = load(
      "  sse: aws:kms\n  sse_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/abc\n  connect_timeout_seconds: 0.5\n  request_timeout_seconds: 30\n  max_attempts: 5\n  retry_mode: adaptive\n",
    );
    expect(storage.storage).toMatchObject({
      sse: "aws:kms",
      sseKmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/abc",
      connectTimeoutMs: 500,
      requestTimeoutMs: 30_000,
      maxAttempts: 5,
      retryMode: "adaptive",
    });
    expect(load("  sse: AES256\n").storage).toMatchObject({ sse: "AES256", sseKmsKeyId: undefined, payloadSigning: "auto" });
    expect(load("  payload_signing: never\n").storage).toMatchObject({ payloadSigning: "never" });
    expect(() => load("  payload_signing: sometimes\n")).toThrow(/payload_signing must be "auto", "always" or "never"/);
    expect(load("  sse: aws:kms\n").storage).toMatchObject({ sse: "aws:kms", sseKmsKeyId: undefined });
  });

  it("takes numbers from the environment", () => {
    const path = s3('  max_attempts: "${env.S3_ATTEMPTS:=3}"\n  request_timeout_seconds: "${env.S3_TIMEOUT:=}"\n');
    expect(loadConfig({ configPath: path, env: { S3_ATTEMPTS: "7", S3_TIMEOUT: "12.5" } }).storage).toMatchObject({ maxAttempts: 7, requestTimeoutMs: 12_500 });
    expect(loadConfig({ configPath: path, env: {} }).storage).toMatchObject({ maxAttempts: 3, requestTimeoutMs: 300_000 });
  });

  it("a session token comes with its key pair", () => {
    expect(load("  aws_access_key_id: ASIAEXAMPLE\n  aws_secret_access_key: s\n  aws_session_token: tok\n").storage).toMatchObject({
      accessKeyId: "ASIAEXAMPLE",
      secretAccessKey: "s",
      sessionToken: "tok",
    });
  });

  it("accepts key prefixes made of relative segments", () => {
    for (const prefix of ["", "tenants/acme/files/", "v1.2/", "a/b_c-d/", "..a/"]) {
      expect(load(`  key_prefix: "${prefix}"\n`).storage, prefix).toMatchObject({ keyPrefix: prefix });
    }
  });

  it.each([
    ["sse_kms_key_id without sse", "  sse_kms_key_id: k-1\n", /config\.sse_kms_key_id is only valid with config\.sse: "aws:kms"/],
    ["sse_kms_key_id with AES256", "  sse: AES256\n  sse_kms_key_id: k-1\n", /config\.sse_kms_key_id is only valid with config\.sse: "aws:kms"/],
    ["an unknown sse", "  sse: aws:kms:dsse\n", /config\.sse: sse must be "AES256" or "aws:kms"/],
    ["max_attempts 0", "  max_attempts: 0\n", /config\.max_attempts: .*>=1/],
    ["max_attempts 11", "  max_attempts: 11\n", /config\.max_attempts: .*<=10/],
    ["max_attempts 2.5", "  max_attempts: 2.5\n", /config\.max_attempts: .*expected int/],
    ["a zero request timeout", "  request_timeout_seconds: 0\n", /config\.request_timeout_seconds: must be more than 0 seconds/],
    ["a negative connect timeout", "  connect_timeout_seconds: -1\n", /config\.connect_timeout_seconds: must be more than 0 seconds/],
    ["a request timeout over an hour", "  request_timeout_seconds: 3601\n", /config\.request_timeout_seconds: must be at most 3600 seconds/],
    ["a connect timeout over 5 minutes", "  connect_timeout_seconds: 301\n", /config\.connect_timeout_seconds: must be at most 300 seconds/],
    ["a timeout that is not a number", "  request_timeout_seconds: soon\n", /config\.request_timeout_seconds/],
    ["an unknown retry mode", "  retry_mode: exponential\n", /config\.retry_mode: retry_mode must be "standard" or "adaptive"/],
    ["a session token without keys", "  aws_session_token: tok\n", /config\.aws_session_token needs config\.aws_access_key_id/],
    ["a key prefix climbing out", '  key_prefix: "../x"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix that is only '..'", '  key_prefix: "../"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix with '..' inside", '  key_prefix: "a/../b/"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix with '.'", '  key_prefix: "./a/"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["an absolute key prefix", '  key_prefix: "/abs/"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix without its trailing slash", '  key_prefix: "tenants/acme"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix with an empty segment", '  key_prefix: "a//"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a key prefix with a space", '  key_prefix: "a b/"\n', /config\.key_prefix: key_prefix must be relative path segments/],
    ["a very long key prefix", `  key_prefix: "${"a/".repeat(300)}"\n`, /config\.key_prefix: key_prefix must be at most 512 characters/],
  ])("names the field for %s", (_what, lines, message) => {
    const path = s3(lines);
    const run = () => loadConfig({ configPath: path, env: {} });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(message);
  });
});
