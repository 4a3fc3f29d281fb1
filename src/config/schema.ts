import { z } from "zod";

// After env substitution an empty string means "not set" (the seed's `${env.X:=}` idiom).
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" || v === null ? undefined : v), schema.optional());

const boolish = z.preprocess((v) => {
  if (typeof v !== "string") return v;
  const lower = v.trim().toLowerCase();
  return lower === "true" ? true : lower === "false" ? false : v;
}, z.boolean());

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

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
});

const metadataStore = z.discriminatedUnion("type", [sqliteStore, postgresStore]);

const checksumMode = z.enum(["WHEN_SUPPORTED", "WHEN_REQUIRED"]);

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
  key_prefix: optional(z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, "key_prefix must be path segments ending in '/'")),
  part_size_bytes: optional(int(5 * MiB, 5 * 1024 * MiB)),
  part_concurrency: optional(int(1, 64)),
  request_checksum_calculation: optional(checksumMode),
  response_checksum_validation: optional(checksumMode),
});

/** `config:` for provider_type inline::localfs, the embedded default. */
export const localFsProviderSchema = z.strictObject({
  storage_dir: optional(z.string()),
  metadata_store: optional(metadataStore),
});

const apiKeySchema = z.strictObject({
  // At least 16 characters: a short key can be guessed. Empty usually means an unset ${env.X}.
  key: z.string().min(16, "key must be at least 16 characters (is its environment variable set?)"),
  principal: z.string().min(1).max(255).regex(/^[^\u0000-\u001f\u007f]+$/, "principal must not contain control characters"),
});

const jwtSchema = z
  .strictObject({
    jwks_url: optional(z.url()),
    public_key: optional(z.string().includes("-----BEGIN", { message: "public_key must be a PEM public key or certificate" })),
    issuer: z.string({ error: "issuer is required" }).min(1),
    audience: z.string({ error: "audience is required" }).min(1),
    principal_claim: optional(z.string().min(1)),
    clock_tolerance_seconds: optional(int(0, 600)),
  })
  .refine((jwt) => (jwt.jwks_url === undefined) !== (jwt.public_key === undefined), {
    message: "give exactly one of jwks_url or public_key",
  });

const authSchema = z
  .strictObject({
    api_keys: optional(z.array(apiKeySchema)),
    jwt: optional(jwtSchema),
  })
  .refine((auth) => (auth.api_keys?.length ?? 0) > 0 || auth.jwt !== undefined, {
    message: "auth needs api_keys or jwt (remove the auth block to run without authentication)",
  })
  .refine((auth) => new Set(auth.api_keys?.map((k) => k.key)).size === (auth.api_keys?.length ?? 0), {
    message: "api_keys: the same key appears twice",
  });

export const serverSchema = z.strictObject({
  host: optional(z.string()),
  auth: optional(authSchema),
  port: optional(int(0, 65535)),
  log_level: optional(z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])),
  limits: optional(
    z.strictObject({
      max_file_bytes: optional(int(1)),
      max_message_bytes: optional(int(64 * 1024, 64 * MiB)),
      max_upload_bytes: optional(int(1)),
      max_part_bytes: optional(int(1)),
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
