import { z } from "zod";
import { UPLOAD_PURPOSES, type UploadPurpose } from "../files/purposes.js";

// After env substitution an empty string means "not set" (the seed's `${env.X:=}` idiom).
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" || v === null ? undefined : v), schema.optional());

const boolish = z.preprocess((v) => {
  if (typeof v !== "string") return v;
  const lower = v.trim().toLowerCase();
  return lower === "true" ? true : lower === "false" ? false : v;
}, z.boolean());

/** Numbers, or numeric strings (what `${env.X}` gives); never booleans or lists, which z.coerce would take. */
const numeric = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v)) ? Number(v) : v), schema);

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => numeric(z.number().int().min(min).max(max));

const MiB = 1024 * 1024;

const sqliteStore = z.strictObject({
  type: z.literal("sqlite"),
  db_path: z.string().min(1),
});

const postgresStore = z.strictObject({
  type: z.literal("postgres"),
  url: optional(z.string()),
  host: optional(z.string()),
  port: optional(int(1, 65535)),
  db: optional(z.string()),
  user: optional(z.string()),
  password: optional(z.string()),
  // TLS to PostgreSQL, in libpq's words: verify-full checks the chain and the host name.
  ssl_mode: optional(z.enum(["disable", "require", "verify-full"], { error: 'ssl_mode must be "disable", "require" or "verify-full"' })),
  ssl_root_cert: optional(z.string().min(1)),
});

const metadataStore = z.discriminatedUnion("type", [sqliteStore, postgresStore]);

const checksumMode = z.enum(["WHEN_SUPPORTED", "WHEN_REQUIRED"]);

/** A duration in seconds; fractions allowed (0.5). */
const seconds = (max: number) =>
  // At least a millisecond: the SDK reads 0 ms as "no timeout".
  numeric(z.number().positive("must be more than 0 seconds").min(0.001, "must be at least 0.001 seconds").max(max, `must be at most ${max} seconds`));

// A default expiry in seconds, or "none" for never.
const ttl = z.union([z.literal("none"), int(1)], { error: 'must be a whole number of seconds (at least 1) or "none"' });

/** Per upload purpose; a purpose left out keeps its built-in default (batch 30 days, others never). */
const defaultTtlSeconds = z.strictObject(
  Object.fromEntries(UPLOAD_PURPOSES.map((purpose) => [purpose, optional(ttl)])) as Record<UploadPurpose, ReturnType<typeof optional<typeof ttl>>>,
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown purpose ${issue.keys.map((k) => `'${k}'`).join(", ")}; the purposes are ${UPLOAD_PURPOSES.join(", ")}`
        : undefined,
  },
);

/** The background removal of expired files and uploads; interval_seconds 0 turns it off. */
const reaper = z.strictObject({
  interval_seconds: optional(int(0, 24 * 3600)),
  batch_size: optional(int(1, 10_000)),
});

/** `config:` for provider_type remote::s3; the seed's keys first, then ours. */
export const s3ProviderSchema = z.strictObject({
  bucket_name: z.string({ error: "bucket_name is required" }).min(3),
  region: optional(z.string()),
  aws_access_key_id: optional(z.string()),
  aws_secret_access_key: optional(z.string()),
  aws_session_token: optional(z.string()),
  endpoint_url: optional(z.url()),
  auto_create_bucket: optional(boolish),
  metadata_store: optional(metadataStore),
  force_path_style: optional(boolish),
  // Relative segments only, so a prefix can neither climb out ("../") nor start at the root ("/").
  key_prefix: optional(
    z
      .string()
      .max(512, "key_prefix must be at most 512 characters")
      .regex(
        /^((?!\.{1,2}\/)[A-Za-z0-9._-]+\/)*$/,
        "key_prefix must be relative path segments each ending in '/' (letters, digits, '.', '_', '-'; no '.' or '..' segments), e.g. tenants/acme/files/",
      ),
  ),
  part_size_bytes: optional(int(5 * MiB, 5 * 1024 * MiB)),
  part_concurrency: optional(int(1, 64)),
  request_checksum_calculation: optional(checksumMode),
  response_checksum_validation: optional(checksumMode),
  sse: optional(z.enum(["AES256", "aws:kms"], { error: 'sse must be "AES256" or "aws:kms"' })),
  sse_kms_key_id: optional(z.string().min(1)),
  connect_timeout_seconds: optional(seconds(300)),
  request_timeout_seconds: optional(seconds(3600)),
  max_attempts: optional(int(1, 10)),
  retry_mode: optional(z.enum(["standard", "adaptive"], { error: 'retry_mode must be "standard" or "adaptive"' })),
  payload_signing: optional(z.enum(["auto", "always", "never"], { error: 'payload_signing must be "auto", "always" or "never"' })),
  // TLS to the endpoint: a private CA's PEM bundle, or (loudly) no verification at all.
  ca_bundle: optional(z.string().min(1)),
  verify_ssl: optional(boolish),
  default_ttl_seconds: optional(defaultTtlSeconds),
  reaper: optional(reaper),
});

/** `config:` for provider_type inline::localfs, the embedded default. */
export const localFsProviderSchema = z.strictObject({
  storage_dir: optional(z.string()),
  metadata_store: optional(metadataStore),
  default_ttl_seconds: optional(defaultTtlSeconds),
  reaper: optional(reaper),
});

const apiKeySchema = z.strictObject({
  // At least 16 characters: a short key can be guessed. Empty usually means an unset ${env.X}.
  key: z.string().min(16, "key must be at least 16 characters (is its environment variable set?)"),
  principal: z.string().min(1).max(255).regex(/^[^\u0000-\u001f\u007f]+$/, "principal must not contain control characters"),
  // For the access policy, as Llama Stack's users carry them: {roles: [...], teams: [...], ...}.
  attributes: optional(z.record(z.string().min(1), z.array(z.string()), { error: "attributes must map names to lists of strings, e.g. teams: [ml]" })),
});

const jwtSchema = z
  .strictObject({
    jwks_url: optional(z.url()),
    public_key: optional(z.string().includes("-----BEGIN", { message: "public_key must be a PEM public key or certificate" })),
    issuer: z.string({ error: "issuer is required" }).min(1),
    audience: z.string({ error: "audience is required" }).min(1),
    principal_claim: optional(z.string().min(1)),
    clock_tolerance_seconds: optional(int(0, 600)),
    // Claim → attribute, Llama Stack's oauth2 claims_mapping; unset: its default.
    claims_mapping: optional(z.record(z.string().min(1), z.string().min(1, "a claims_mapping value cannot be empty"))),
  })
  .refine((jwt) => (jwt.jwks_url === undefined) !== (jwt.public_key === undefined), {
    message: "give exactly one of jwks_url or public_key",
  });

/** Llama Stack's `custom` provider: the token goes to an endpoint that answers {principal, attributes}. */
const customAuthSchema = z.strictObject({
  endpoint: z.url({ error: "endpoint must be a URL (http:// or https://)" }),
  timeout_seconds: optional(seconds(120)),
  cache_ttl_seconds: optional(int(0, 24 * 3600)),
  cache_max_entries: optional(int(0, 1_000_000)),
});

const authSchema = z
  .strictObject({
    api_keys: optional(z.array(apiKeySchema)),
    jwt: optional(jwtSchema),
    custom: optional(customAuthSchema),
    // A preset name, or Llama Stack's rule list verbatim; checked by access-policy.ts.
    access_policy: optional(
      z.union([z.string(), z.array(z.unknown())], { error: 'access_policy must be "owner_only", "llama_stack_default" or a list of rules' }),
    ),
  })
  .refine((auth) => (auth.api_keys?.length ?? 0) > 0 || auth.jwt !== undefined || auth.custom !== undefined, {
    message: "auth needs api_keys or jwt, or a custom endpoint (remove the auth block to run without authentication)",
  })
  .refine((auth) => new Set(auth.api_keys?.map((k) => k.key)).size === (auth.api_keys?.length ?? 0), {
    message: "api_keys: the same key appears twice",
  });

const tlsVersion = z.preprocess(
  (v) => (typeof v === "string" && /^1\.[23]$/.test(v.trim()) ? `TLSv${v.trim()}` : v),
  z.enum(["TLSv1.2", "TLSv1.3"], { error: 'min_version must be "TLSv1.2" or "TLSv1.3"' }),
);

/** TLS on the one port (ALPN h2 and http/1.1), and optionally client certificates (mutual TLS). */
const tlsSchema = z
  .strictObject({
    cert_file: z.string({ error: "cert_file is required (a PEM certificate, its chain after it)" }).min(1),
    key_file: z.string({ error: "key_file is required (the PEM private key of cert_file)" }).min(1),
    key_passphrase: optional(z.string()),
    min_version: optional(tlsVersion),
    client_ca_file: optional(z.string().min(1)),
    client_auth: optional(z.enum(["none", "optional", "require"], { error: 'client_auth must be "none", "optional" or "require"' })),
    principal_from: optional(
      z.enum(["subject_cn", "san_uri", "san_dns"], { error: 'principal_from must be "subject_cn", "san_uri" or "san_dns"' }),
    ),
    principal_precedence: optional(z.enum(["token", "certificate"], { error: 'principal_precedence must be "token" or "certificate"' })),
    reload_interval_seconds: optional(int(0, 3600)),
  })
  .refine((tls) => tls.client_auth === undefined || tls.client_auth === "none" || tls.client_ca_file !== undefined, {
    message: "client_auth optional or require needs client_ca_file (the CA that signs client certificates)",
    path: ["client_ca_file"],
  })
  .refine((tls) => tls.principal_from === undefined || (tls.client_ca_file !== undefined && tls.client_auth !== "none"), {
    message: "principal_from needs client certificates: set client_ca_file and client_auth optional or require",
    path: ["principal_from"],
  })
  .refine((tls) => tls.principal_precedence === undefined || tls.principal_from !== undefined, {
    message: "principal_precedence only applies with principal_from",
    path: ["principal_precedence"],
  });

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export const serverSchema = z.strictObject({
  host: optional(z.string()),
  auth: optional(authSchema),
  port: optional(int(0, 65535)),
  log_level: optional(z.enum(LOG_LEVELS)),
  tls: optional(tlsSchema),
  limits: optional(
    z.strictObject({
      max_file_bytes: optional(int(1)),
      max_message_bytes: optional(int(64 * 1024, 64 * MiB)),
      max_upload_bytes: optional(int(1)),
      max_part_bytes: optional(int(1)),
      max_concurrent_uploads: optional(int(1, 100_000)),
      max_concurrent_uploads_per_principal: optional(int(1, 100_000)),
      // Slow-loris guards: a connection must send its request head in time, and no request or
      // stream may sit without a byte in either direction for longer than the idle timeout.
      header_timeout_seconds: optional(int(1, 3600)),
      idle_timeout_seconds: optional(int(1, 24 * 3600)),
    }),
  ),
  uploads: optional(
    z.strictObject({
      // OpenAI's uploads lapse after an hour; shorter is for tests and tight quotas.
      expire_after_seconds: optional(int(1, 7 * 24 * 3600)),
    }),
  ),
});

export const documentSchema = z.strictObject({
  api: optional(z.literal("files")),
  provider_type: optional(z.enum(["remote::s3", "inline::localfs"])),
  config: optional(z.record(z.string(), z.unknown())),
  server: optional(serverSchema),
});

export type S3ProviderYaml = z.infer<typeof s3ProviderSchema>;
export type LocalFsProviderYaml = z.infer<typeof localFsProviderSchema>;
export type ServerYaml = z.infer<typeof serverSchema>;
export type MetadataStoreYaml = z.infer<typeof metadataStore>;
export type DefaultTtlYaml = z.infer<typeof defaultTtlSeconds>;
export type ReaperYaml = z.infer<typeof reaper>;
