/**
 * Property-based pass over the config loader: arbitrary documents (shaped like the real one, with
 * random and wrong values, unknown keys and junk) and raw YAML-ish text, with random environment
 * variables, go through loadConfig exactly as --config would hand them over. Each either loads
 * into a configuration the server can start with, or fails with a ConfigError whose message names
 * where in the document the problem is: never another exception. Replay a failure with FUZZ_SEED.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { pino } from "pino";
import { parse, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import type { Config } from "../../src/config/config.js";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20260105);
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const DIR = mkdtempSync(join(tmpdir(), "files-config-fuzz-"));
const PATH = join(DIR, "files.yaml");

/** The levels pino starts with ("silent" turns logging off); anything else makes pino() throw. */
const LOG_LEVELS = [...Object.keys(pino.levels.values), "silent"];

function runProperty<T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void): void {
  console.log(`fast-check seed ${SEED}, ${RUNS} runs (FUZZ_SEED / FUZZ_RUNS to change)`);
  try {
    fc.assert(fc.property(arbitrary, predicate), { seed: SEED, numRuns: RUNS });
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    throw new Error(`replay with FUZZ_SEED=${SEED}\n${(err as Error).message}${cause ? `\n--- cause ---\n${cause.message}` : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Documents

const PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"];
const SECTIONS: Record<string, string[]> = {
  top: ["api", "provider_type", "config", "server"],
  config: [
    "bucket_name", "region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "endpoint_url",
    "auto_create_bucket", "metadata_store", "force_path_style", "key_prefix", "part_size_bytes", "part_concurrency",
    "request_checksum_calculation", "response_checksum_validation", "sse", "sse_kms_key_id", "connect_timeout_seconds",
    "request_timeout_seconds", "max_attempts", "retry_mode", "payload_signing", "default_ttl_seconds", "reaper", "storage_dir",
  ],
  metadata_store: ["type", "db_path", "url", "host", "port", "db", "user", "password"],
  default_ttl_seconds: PURPOSES,
  reaper: ["interval_seconds", "batch_size"],
  server: ["host", "auth", "port", "log_level", "limits", "uploads"],
  auth: ["api_keys", "jwt"],
  jwt: ["jwks_url", "public_key", "issuer", "audience", "principal_claim", "clock_tolerance_seconds"],
  limits: ["max_file_bytes", "max_message_bytes", "max_upload_bytes", "max_part_bytes", "max_concurrent_uploads", "header_timeout_seconds", "idle_timeout_seconds"],
  uploads: ["expire_after_seconds"],
  api_key: ["key", "principal"],
};

/** Values a real document might hold for a key, so that a fair share of documents load. */
const PLAUSIBLE: Record<string, unknown[]> = {
  api: ["files", "other"],
  provider_type: ["remote::s3", "inline::localfs", "remote::gcs"],
  bucket_name: ["my-bucket", "ab", "files-${env.BUCKET:=x}"],
  region: ["us-east-1", ""],
  endpoint_url: ["http://127.0.0.1:9000", "not a url", "${env.S3_ENDPOINT:=}"],
  aws_access_key_id: ["AKIAEXAMPLE", ""],
  aws_secret_access_key: ["secret", ""],
  type: ["sqlite", "postgres", "mysql"],
  db_path: ["/tmp/files.db", ""],
  url: ["postgres://files@127.0.0.1/files", ""],
  key_prefix: ["tenants/acme/", "../x/", "/abs/", "no-slash"],
  request_checksum_calculation: ["WHEN_REQUIRED", "WHEN_SUPPORTED", "ALWAYS"],
  response_checksum_validation: ["WHEN_REQUIRED", "never"],
  sse: ["AES256", "aws:kms", "des"],
  sse_kms_key_id: ["alias/files", ""],
  retry_mode: ["standard", "adaptive", "legacy"],
  payload_signing: ["auto", "never", "sometimes"],
  storage_dir: ["./data/files", ""],
  host: ["127.0.0.1", "0.0.0.0", ""],
  log_level: ["info", "debug", "loud"],
  key: ["sk-test-0123456789abcdef", "short", "${env.API_KEY}", "${env.API_KEY:=sk-test-fallback-000000}"],
  principal: ["alice", "", "bob\u0007"],
  issuer: ["https://issuer.example", ""],
  audience: ["files", ""],
  jwks_url: ["https://issuer.example/jwks.json", "nope"],
  public_key: ["-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "plain"],
  principal_claim: ["sub", ""],
};

const scalar = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.integer({ min: -1000, max: 10 ** 12 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("", "none", "true", "0x10", "1e3", "-1", "65536", "${env.X}", "${env.UNSET_VAR}", "${env.X:=5}", "${env.X:+y}", "${env.", "~"),
);

const { value: anyValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { maxDepth: 3 },
    { weight: 4, arbitrary: scalar },
    { weight: 1, arbitrary: fc.array(tie("value"), { maxLength: 3 }) },
    { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 3 }) },
  ),
}));

const numberish = fc.oneof(
  fc.integer({ min: -5, max: 100 }),
  fc.integer({ min: 0, max: 70_000 }),
  fc.integer({ min: 1, max: 10 * 1024 ** 3 }),
  fc.constantFrom(0, 0.5, 1.5, 1e-9, 2 ** 53, "10", "abc", ""),
);

function leaf(key: string): fc.Arbitrary<unknown> {
  const plausible = PLAUSIBLE[key];
  return fc.oneof(
    { weight: 6, arbitrary: plausible ? fc.constantFrom(...plausible) : numberish },
    { weight: 1, arbitrary: anyValue },
  );
}

/** A mapping with any subset of `section`'s keys, now and then with unknown keys or replaced by junk. */
function section(name: string): fc.Arbitrary<unknown> {
  const keys = SECTIONS[name]!;
  // A few keys at a time: a document that sets every key at random is almost never valid.
  const record = fc
    .subarray(keys, { maxLength: Math.min(4, keys.length) })
    .chain((chosen) => fc.record(Object.fromEntries(chosen.map((key) => [key, valueOf(key)]))));
  return fc.oneof(
    { weight: 8, arbitrary: record },
    {
      weight: 1,
      arbitrary: fc.tuple(record, fc.dictionary(fc.string({ maxLength: 10 }), anyValue, { minKeys: 1, maxKeys: 2 })).map(([known, extra]) => ({ ...extra, ...known })),
    },
    { weight: 1, arbitrary: anyValue },
  );
}

function valueOf(key: string): fc.Arbitrary<unknown> {
  if (key === "api_keys") return fc.oneof({ weight: 4, arbitrary: fc.array(section("api_key"), { maxLength: 3 }) }, { weight: 1, arbitrary: anyValue });
  return SECTIONS[key] ? section(key) : leaf(key);
}

const documents = fc.oneof({ weight: 9, arbitrary: section("top") }, { weight: 1, arbitrary: anyValue });

const environment = fc.record(
  {
    PORT: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 65_535 }).map(String) },
      { weight: 1, arbitrary: fc.constantFrom("", "65536", "-1", "http", "80.5", " 80", "0x50", "1e3") },
    ),
    LOG_LEVEL: fc.constantFrom("", "info", "debug", "silent", "INFO", "verbose", "nope"),
    X: fc.string({ maxLength: 10 }),
    API_KEY: fc.constantFrom("", "sk-test-from-env-0000000", "short"),
    S3_ENDPOINT: fc.constantFrom("", "http://127.0.0.1:9000", "nope"),
  },
  { requiredKeys: [] },
);
const cliPort = fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("8080", "0", "99999", "abc", "") });

// ---------------------------------------------------------------------------------------------------
// Oracles

const SCHEMA_KEYS = new Set([...Object.keys(SECTIONS), ...Object.values(SECTIONS).flat(), "api_keys"]);

/**
 * Does `path` ("config.metadata_store.type", "server.auth.api_keys.0.key") lead into `doc`? What the
 * document lacks may only be the configuration's own keys (a required field, or the section holding it).
 */
function pointsInto(doc: unknown, path: string): boolean {
  if (path === "") return true;
  if (doc !== null && typeof doc === "object") {
    // Keys may themselves hold dots, so try each key that the path starts with.
    for (const key of Object.keys(doc)) {
      if (path === key) return true;
      if (path.startsWith(`${key}.`) && pointsInto((doc as Record<string, unknown>)[key], path.slice(key.length + 1))) return true;
    }
  }
  return path.split(".").every((key) => SCHEMA_KEYS.has(key));
}

/** The ConfigError names where the problem is: each listed field, or a named field, leads into the document. */
function namesAField(message: string, doc: unknown): boolean {
  const listed = [...message.matchAll(/^ {2}(.+?): /gm)].map((m) => m[1]!);
  if (message.includes("invalid configuration in")) {
    return listed.length > 0 && listed.every((path) => path === "(top level)" || pointsInto(doc, path));
  }
  // Values from the environment or the command line are named by their variable or flag.
  if (/^port '.*' is not a port number/.test(message)) return true;
  if (/^LOG_LEVEL '.*' is not a log level/.test(message)) return true;
  // "<file>: server.auth.api_keys[0].key: environment variable X is not set"; "(document)" is a bare string document.
  const unsetAt = message.lastIndexOf(": environment variable ");
  if (message.startsWith(`${PATH}: `) && unsetAt > 0 && /: environment variable \S+ is not set/.test(message)) {
    const path = message.slice(PATH.length + 2, unsetAt);
    return path === "(document)" || pointsInto(doc, path) || pointsInto(doc, path.replace(/\[(\d+)\]/g, ".$1").replace(/^\./, ""));
  }
  // "config.aws_session_token needs ...", "config.metadata_store: a postgres store needs ...".
  const named = [...message.matchAll(/(?:^|[\s:])((?:config|server)(?:\.[^\s:]+)+)/g)].map((m) => m[1]!);
  return named.some((path) => pointsInto(doc, path));
}

/** What the server relies on once the configuration is loaded. */
function expectUsable(config: Config, context: string): void {
  const positive = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n > 0;
  expect(LOG_LEVELS, `${context}\nlogLevel ${config.server.logLevel}`).toContain(config.server.logLevel);
  expect(Number.isInteger(config.server.port) && config.server.port >= 0 && config.server.port <= 65535, `${context}\nport ${config.server.port}`).toBe(true);
  for (const name of ["maxFileBytes", "maxMessageBytes", "maxUploadBytes", "maxPartBytes", "uploadExpireAfterSeconds"] as const) {
    expect(positive(config.server[name]), `${context}\n${name} ${config.server[name]}`).toBe(true);
  }
  if (config.storage.type === "remote::s3") {
    const s3 = config.storage;
    expect(typeof s3.bucket === "string" && s3.bucket.length >= 3, context).toBe(true);
    // The AWS SDK reads a 0 ms timeout as "no timeout at all".
    for (const name of ["connectTimeoutMs", "requestTimeoutMs", "partSizeBytes", "partConcurrency", "maxAttempts"] as const) {
      expect(positive(s3[name]), `${context}\n${name} ${s3[name]}`).toBe(true);
    }
  } else {
    expect(config.storage.storageDir.length, context).toBeGreaterThan(0);
  }
  if (config.metadataStore.type === "sqlite") expect(config.metadataStore.dbPath.length, context).toBeGreaterThan(0);
  for (const ttl of Object.values(config.expiry.defaultTtlSeconds)) expect(ttl === null || positive(ttl), context).toBe(true);
  for (const key of config.auth?.apiKeys ?? []) expect(key.key.length, context).toBeGreaterThanOrEqual(16);
}

type Outcome = { loaded: Config } | { error: unknown };

function load(text: string, env: Record<string, string | undefined>, port: string | null): Outcome {
  writeFileSync(PATH, text);
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>;
  try {
    return { loaded: loadConfig({ configPath: PATH, env: clean, ...(port === null ? {} : { port }) }) };
  } catch (error) {
    return { error };
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}\n${error.stack?.split("\n").slice(1, 4).join("\n")}` : String(error);
}

// ---------------------------------------------------------------------------------------------------

describe("loadConfig under fast-check", () => {
  it("a document either loads or fails with a ConfigError naming a field in it", () => {
    const seen = { loaded: 0, refused: 0 };
    runProperty(fc.tuple(documents, environment, cliPort), ([doc, env, port]) => {
      const text = stringify(doc);
      const outcome = load(text, env, port);
      const context = `env ${JSON.stringify(env)}, --port ${port}\n--- document ---\n${text.slice(0, 1500)}`;
      if ("loaded" in outcome) {
        seen.loaded++;
        return;
      }
      seen.refused++;
      expect(outcome.error instanceof ConfigError, `${describeError(outcome.error)}\n${context}`).toBe(true);
      const { message } = outcome.error as ConfigError;
      expect(namesAField(message, parse(text)), `${message}\n${context}`).toBe(true);
    });
    // Both outcomes are common, or the property says little.
    expect(seen.loaded).toBeGreaterThan(RUNS / 20);
    expect(seen.refused).toBeGreaterThan(RUNS / 20);
  });

  it("a document that loads is one the server can start with (log level, port, sizes, timeouts)", () => {
    runProperty(fc.tuple(documents, environment, cliPort), ([doc, env, port]) => {
      const text = stringify(doc);
      const outcome = load(text, env, port);
      if ("loaded" in outcome) expectUsable(outcome.loaded, `env ${JSON.stringify(env)}, --port ${port}\n--- document ---\n${text.slice(0, 1500)}`);
    });
  });

  const TOKENS = [
    "config:", "server:", "provider_type: remote::s3", "bucket_name: my-bucket", "metadata_store:", "type: sqlite",
    "db_path: /tmp/x.db", "limits:", "max_file_bytes: 1024", "port: 80", "auth:", "api_keys:", "- key: sk-test-0123456789abcdef",
    "  principal: alice", "  ", "    ", "\t", "- ", ": ", ":", "[", "]", "{", "}", ",", "&a", "*a", "<<: *a", "!!binary", "!!str",
    "!foo", "? ", "|", ">", "---", "...", "#", "'", '"', "${env.X}", "${env.NOPE}", "%YAML 1.2", "%TAG", "\u0000", "\ufeff", "key",
    "0x1F", "1e3", ".inf", ".nan", "~", "null", "yes", "on",
  ];
  const yamlish = fc
    .array(fc.tuple(fc.constantFrom(...TOKENS), fc.constantFrom(" ", "\n", "\n  ", "\n    ", "")), { maxLength: 30 })
    .map((pieces) => pieces.map(([token, sep]) => token + sep).join(""));

  it("raw YAML-ish text either loads or fails with a ConfigError naming the file (bad YAML) or a field", () => {
    runProperty(fc.tuple(fc.oneof(yamlish, fc.string({ unit: "binary", maxLength: 200 })), environment), ([text, env]) => {
      const outcome = load(text, env, null);
      if ("loaded" in outcome) return;
      const context = `env ${JSON.stringify(env)}\n--- text ---\n${JSON.stringify(text).slice(0, 1500)}`;
      expect(outcome.error instanceof ConfigError, `${describeError(outcome.error)}\n${context}`).toBe(true);
      const { message } = outcome.error as ConfigError;
      let doc: unknown;
      try {
        doc = parse(text);
      } catch {
        expect(message, context).toMatch(new RegExp(`^${PATH.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is not valid YAML`));
        return;
      }
      expect(namesAField(message, doc), `${message}\n${context}`).toBe(true);
    });
  });
});

describe("loadConfig on inputs found or suggested by the properties", () => {
  const text = (doc: unknown) => stringify(doc);

  it.each([
    ["nesting 10,000 levels deep", `config: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`],
    ["an alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"],
    ["a duplicate key", "server: {}\nserver: {}\n"],
    ["a tab for indentation", "server:\n\tport: 80\n"],
  ])("%s is a ConfigError about the YAML, not a crash", (_what, yaml) => {
    const outcome = load(yaml, {}, null);
    expect("error" in outcome && outcome.error instanceof ConfigError, "error" in outcome ? describeError(outcome.error) : "loaded").toBe(true);
    expect(((outcome as { error: Error }).error).message).toMatch(/is not valid YAML/);
  });

  // LOG_LEVEL overrides server.log_level, so it gets the same check (pino would otherwise throw at
  // start, and the server exit with a stack trace instead of a ConfigError naming the variable).
  it.each(["nope", "INFO", "verbose"])("LOG_LEVEL=%s is refused like server.log_level, naming LOG_LEVEL", (level) => {
    const outcome = load("", { LOG_LEVEL: level }, null);
    expect("error" in outcome, "loaded a configuration pino cannot start with").toBe(true);
    const error = (outcome as { error: Error }).error;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/LOG_LEVEL/);
  });

  // A positive number of seconds that rounds to 0 ms reaches the AWS SDK as 0, which it reads as "no timeout".
  it.each(["connect_timeout_seconds", "request_timeout_seconds"])("a %s that rounds to 0 ms is refused, naming the field", (field) => {
    const outcome = load(text({ provider_type: "remote::s3", config: { bucket_name: "my-bucket", [field]: 0.0001 } }), {}, null);
    expect("error" in outcome, "loaded").toBe(true);
    const error = (outcome as { error: Error }).error;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(`config.${field}`);
  });

  // The integer fields coerce with Number(): `true` becomes 1 byte, `[8080]` becomes 8080.
  it.each([
    ["server.port", { server: { port: [8080] } }],
    ["server.port", { server: { port: true } }],
    ["server.limits.max_file_bytes", { server: { limits: { max_file_bytes: true } } }],
    ["server.limits.max_file_bytes", { server: { limits: { max_file_bytes: [1048576] } } }],
    ["config.part_concurrency", { config: { bucket_name: "my-bucket", part_concurrency: [4] } }],
  ])("a boolean or a list where %s expects a number is refused, naming it", (field, doc) => {
    const outcome = load(text(doc), {}, null);
    expect("error" in outcome, `loaded ${JSON.stringify(doc)}`).toBe(true);
    const error = (outcome as { error: Error }).error;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain(field);
  });
});
