import { AccessPolicyError, parseAccessPolicy, POLICY_PRESETS, type AccessPolicy, type PolicyPreset } from "../files/access-policy.js";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { MissingEnvError, substituteEnv } from "./env-substitution.js";
import {
  documentSchema,
  LOG_LEVELS,
  localFsProviderSchema,
  s3ProviderSchema,
  type DefaultTtlYaml,
  type MetadataStoreYaml,
  type ReaperYaml,
  type S3ProviderYaml,
  type ServerYaml,
} from "./schema.js";
import type { AuthConfig, Config, ExpiryConfig, MetadataStoreConfig, TlsConfig } from "./config.js";
import { BUILT_IN_DEFAULT_TTLS } from "../files/default-ttl.js";

const MiB = 1024 * 1024;
export const DEFAULT_PORT = 8321;
export const DEFAULT_MAX_FILE_BYTES = 512 * MiB;
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * MiB;
/** OpenAI: an Upload may be up to 8 GB, in parts of up to 64 MB. */
export const DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * MiB;
export const DEFAULT_MAX_PART_BYTES = 64 * MiB;
export const DEFAULT_UPLOAD_EXPIRE_AFTER_SECONDS = 3600;
/** Each upload holds a socket, an S3 part buffer (part_size_bytes) and an S3 connection. */
export const DEFAULT_MAX_CONCURRENT_UPLOADS = 512;
/** With authentication off every caller is one principal, so this must not be below a busy client's needs. */
export const DEFAULT_MAX_CONCURRENT_UPLOADS_PER_PRINCIPAL = 256;
export const DEFAULT_HEADER_TIMEOUT_SECONDS = 30;
// Generous: completing a multi-GiB Upload sends nothing to its client while the parts are assembled.
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 600;
export const DEFAULT_REAPER_INTERVAL_SECONDS = 60;
export const DEFAULT_REAPER_BATCH_SIZE = 100;
export const DEFAULT_S3_CONNECT_TIMEOUT_SECONDS = 10;
/** Generous: a PUT's time includes sending its part (8 MiB by default) over a slow link. */
export const DEFAULT_S3_REQUEST_TIMEOUT_SECONDS = 300;
/** The AWS SDK's own default: the first try and two retries. */
export const DEFAULT_S3_MAX_ATTEMPTS = 3;

/** A configuration problem, worded for the operator: it names the file and the field. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export interface ConfigSources {
  /** From --config, else FILES_CONFIG; absent means the embedded default. */
  configPath?: string;
  /** From --port, else PORT. */
  port?: string;
  /** From --host. */
  host?: string;
  env: NodeJS.ProcessEnv;
}

export function loadConfig(sources: ConfigSources): Config {
  const where = sources.configPath ?? "the built-in default configuration";
  const raw = sources.configPath === undefined ? {} : readYaml(sources.configPath);
  let substituted: unknown;
  try {
    substituted = substituteEnv(raw ?? {}, sources.env);
  } catch (err) {
    if (err instanceof MissingEnvError) throw new ConfigError(`${where}: ${err.message}`);
    throw err;
  }
  const doc = check(documentSchema, substituted, where, "");
  const providerType = doc.provider_type ?? inferProviderType(doc.config ?? {});
  const server = doc.server ?? {};
  const port = sources.port ?? sources.env.PORT;
  const portNumber = port === undefined || port === "" ? (server.port ?? DEFAULT_PORT) : Number(port);
  if (!Number.isInteger(portNumber) || portNumber < 0 || portNumber > 65535) {
    throw new ConfigError(`port '${port}' is not a port number (0-65535)`);
  }
  const common = {
    auth: authConfig(server.auth, where),
    server: {
      host: sources.host ?? server.host ?? "127.0.0.1",
      port: portNumber,
      logLevel: logLevel(sources.env.LOG_LEVEL) ?? server.log_level ?? "info",
      maxFileBytes: server.limits?.max_file_bytes ?? DEFAULT_MAX_FILE_BYTES,
      maxMessageBytes: server.limits?.max_message_bytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxUploadBytes: server.limits?.max_upload_bytes ?? DEFAULT_MAX_UPLOAD_BYTES,
      maxPartBytes: server.limits?.max_part_bytes ?? DEFAULT_MAX_PART_BYTES,
      uploadExpireAfterSeconds: server.uploads?.expire_after_seconds ?? DEFAULT_UPLOAD_EXPIRE_AFTER_SECONDS,
      maxConcurrentUploads: server.limits?.max_concurrent_uploads ?? DEFAULT_MAX_CONCURRENT_UPLOADS,
      maxConcurrentUploadsPerPrincipal: server.limits?.max_concurrent_uploads_per_principal ?? DEFAULT_MAX_CONCURRENT_UPLOADS_PER_PRINCIPAL,
      headerTimeoutMs: (server.limits?.header_timeout_seconds ?? DEFAULT_HEADER_TIMEOUT_SECONDS) * 1000,
      idleTimeoutMs: (server.limits?.idle_timeout_seconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS) * 1000,
      tls: tlsConfig(server.tls),
    },
  };

  if (providerType === "remote::s3") {
    const s3 = check(s3ProviderSchema, doc.config ?? {}, where, "config.");
    return {
      ...common,
      metadataStore: metadataStoreConfig(s3.metadata_store, "./data/files.db"),
      storage: s3StorageConfig(s3),
      expiry: expiryConfig(s3),
    };
  }
  const local = check(localFsProviderSchema, doc.config ?? {}, where, "config.");
  return {
    ...common,
    metadataStore: metadataStoreConfig(local.metadata_store, "./data/files.db"),
    storage: { type: "inline::localfs", storageDir: local.storage_dir ?? "./data/files" },
    expiry: expiryConfig(local),
  };
}

/**
 * The seed's blocks often omit provider_type. Any key of its own names local storage; any other
 * key (bucket_name, region, a misspelt one...) means S3, so a typo is reported against S3's keys.
 */
function inferProviderType(config: Record<string, unknown>): "remote::s3" | "inline::localfs" {
  const keys = Object.keys(config).filter((key) => !PROVIDER_NEUTRAL_KEYS.has(key));
  if (keys.length === 0 || keys.includes("storage_dir")) return "inline::localfs";
  return "remote::s3";
}

function s3StorageConfig(s3: S3ProviderYaml): Config["storage"] {
  if ((s3.aws_access_key_id === undefined) !== (s3.aws_secret_access_key === undefined)) {
    throw new ConfigError("config.aws_access_key_id and config.aws_secret_access_key must be given together (or neither, for the default credential chain)");
  }
  if (s3.aws_session_token !== undefined && s3.aws_access_key_id === undefined) {
    throw new ConfigError("config.aws_session_token needs config.aws_access_key_id and config.aws_secret_access_key (the temporary credentials it belongs to)");
  }
  if (s3.sse_kms_key_id !== undefined && s3.sse !== "aws:kms") {
    throw new ConfigError('config.sse_kms_key_id is only valid with config.sse: "aws:kms"');
  }
  if (s3.ca_bundle !== undefined && s3.verify_ssl === false) {
    throw new ConfigError("config.ca_bundle and config.verify_ssl: false contradict each other: give the CA bundle and keep verification on");
  }
  const custom = s3.endpoint_url !== undefined;
  return {
    type: "remote::s3",
    bucket: s3.bucket_name,
    region: s3.region ?? "us-east-1",
    endpointUrl: s3.endpoint_url,
    accessKeyId: s3.aws_access_key_id,
    secretAccessKey: s3.aws_secret_access_key,
    sessionToken: s3.aws_session_token,
    autoCreateBucket: s3.auto_create_bucket ?? false,
    forcePathStyle: s3.force_path_style ?? custom,
    keyPrefix: s3.key_prefix ?? "",
    partSizeBytes: s3.part_size_bytes ?? 8 * MiB,
    partConcurrency: s3.part_concurrency ?? 4,
    // Many S3-compatible servers mis-store aws-chunked trailing checksums (stack notes): off for custom endpoints.
    requestChecksumCalculation: s3.request_checksum_calculation ?? (custom ? "WHEN_REQUIRED" : "WHEN_SUPPORTED"),
    responseChecksumValidation: s3.response_checksum_validation ?? (custom ? "WHEN_REQUIRED" : "WHEN_SUPPORTED"),
    sse: s3.sse,
    sseKmsKeyId: s3.sse_kms_key_id,
    connectTimeoutMs: Math.round((s3.connect_timeout_seconds ?? DEFAULT_S3_CONNECT_TIMEOUT_SECONDS) * 1000),
    requestTimeoutMs: Math.round((s3.request_timeout_seconds ?? DEFAULT_S3_REQUEST_TIMEOUT_SECONDS) * 1000),
    maxAttempts: s3.max_attempts ?? DEFAULT_S3_MAX_ATTEMPTS,
    retryMode: s3.retry_mode ?? "standard",
    payloadSigning: s3.payload_signing ?? "auto",
    caBundle: s3.ca_bundle,
    verifySsl: s3.verify_ssl ?? true,
  };
}

function logLevel(fromEnv: string | undefined): string | undefined {
  if (fromEnv === undefined || fromEnv === "") return undefined;
  if (!(LOG_LEVELS as readonly string[]).includes(fromEnv)) {
    throw new ConfigError(`LOG_LEVEL '${fromEnv}' is not a log level (one of ${LOG_LEVELS.join(", ")})`);
  }
  return fromEnv;
}

export const DEFAULT_TLS_RELOAD_INTERVAL_SECONDS = 10;

function tlsConfig(tls: ServerYaml["tls"]): TlsConfig | undefined {
  if (tls === undefined) return undefined;
  return {
    certFile: tls.cert_file,
    keyFile: tls.key_file,
    keyPassphrase: tls.key_passphrase,
    minVersion: tls.min_version ?? "TLSv1.2",
    clientCaFile: tls.client_ca_file,
    // A CA for client certificates with nothing else said means they are required (as Llama Stack's tls_cafile).
    clientAuth: tls.client_auth ?? (tls.client_ca_file !== undefined ? "require" : "none"),
    principalFrom: tls.principal_from,
    principalPrecedence: tls.principal_precedence ?? "token",
    reloadIntervalMs: (tls.reload_interval_seconds ?? DEFAULT_TLS_RELOAD_INTERVAL_SECONDS) * 1000,
  };
}

function authConfig(auth: ServerYaml["auth"], where: string): AuthConfig | undefined {
  if (auth === undefined) return undefined;
  const jwt = auth.jwt;
  const policy = auth.access_policy;
  if (typeof policy === "string" && !Object.hasOwn(POLICY_PRESETS, policy)) {
    throw new ConfigError(
      `invalid configuration in ${where}:\n  server.auth.access_policy: access_policy must be "owner_only", "llama_stack_default" or a list of rules (not '${policy}')`,
    );
  }
  let accessPolicy: AccessPolicy | undefined;
  try {
    accessPolicy = policy === undefined ? undefined : typeof policy === "string" ? POLICY_PRESETS[policy as PolicyPreset] : parseAccessPolicy(policy);
  } catch (err) {
    if (err instanceof AccessPolicyError) throw new ConfigError(`invalid configuration in ${where}:\n  server.auth.${err.message}`);
    throw err;
  }
  return {
    apiKeys: (auth.api_keys ?? []).map(({ key, principal, attributes }) => ({ key, principal, ...(attributes && { attributes }) })),
    // Unset (owner_only) stays unset, so a config without a policy reads as it always did.
    ...(accessPolicy && { accessPolicy, accessPolicyName: typeof policy === "string" ? policy : "custom" }),
    ...(auth.custom && {
      custom: {
        endpoint: auth.custom.endpoint,
        timeoutMs: (auth.custom.timeout_seconds ?? 10) * 1000,
        cacheTtlMs: (auth.custom.cache_ttl_seconds ?? 60) * 1000,
        cacheMaxEntries: auth.custom.cache_max_entries ?? 10_000,
      },
    }),
    jwt: jwt && {
      jwksUrl: jwt.jwks_url,
      publicKey: jwt.public_key,
      issuer: jwt.issuer,
      audience: jwt.audience,
      principalClaim: jwt.principal_claim ?? "sub",
      clockToleranceSeconds: jwt.clock_tolerance_seconds,
      ...(jwt.claims_mapping && { claimsMapping: jwt.claims_mapping }),
    },
  };
}

/** Keys both provider types take, which say nothing about which one is meant. */
const PROVIDER_NEUTRAL_KEYS = new Set(["metadata_store", "default_ttl_seconds", "reaper"]);

function expiryConfig(provider: { default_ttl_seconds?: DefaultTtlYaml; reaper?: ReaperYaml }): ExpiryConfig {
  const overrides = Object.entries(provider.default_ttl_seconds ?? {}).filter(([, ttl]) => ttl !== undefined);
  return {
    defaultTtlSeconds: {
      ...BUILT_IN_DEFAULT_TTLS,
      ...Object.fromEntries(overrides.map(([purpose, ttl]) => [purpose, ttl === "none" ? null : ttl])),
    },
    reaper: {
      intervalSeconds: provider.reaper?.interval_seconds ?? DEFAULT_REAPER_INTERVAL_SECONDS,
      batchSize: provider.reaper?.batch_size ?? DEFAULT_REAPER_BATCH_SIZE,
    },
  };
}

function metadataStoreConfig(store: MetadataStoreYaml | undefined, defaultPath: string): MetadataStoreConfig {
  if (store === undefined) return { type: "sqlite", dbPath: defaultPath };
  if (store.type === "sqlite") return { type: "sqlite", dbPath: store.db_path };
  if (store.url === undefined && store.db === undefined) {
    throw new ConfigError("config.metadata_store: a postgres store needs either url or host/port/db/user/password");
  }
  if (store.ssl_root_cert !== undefined && store.ssl_mode !== undefined && store.ssl_mode !== "verify-full") {
    throw new ConfigError(`config.metadata_store.ssl_root_cert is only used with ssl_mode: verify-full (ssl_mode is ${store.ssl_mode})`);
  }
  // Unset fields stay unset, so they never mask what a url says (the driver defaults the rest).
  return {
    type: "postgres",
    url: store.url,
    host: store.host,
    port: store.port,
    db: store.db,
    user: store.user,
    password: store.password,
    sslMode: store.ssl_mode ?? (store.ssl_root_cert !== undefined ? "verify-full" : undefined),
    sslRootCert: store.ssl_root_cert,
  };
}

function readYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
}

function check<T extends z.ZodType>(schema: T, value: unknown, where: string, prefix: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = prefix + issue.path.map(String).join(".");
    return `  ${field.replace(/\.$/, "") || "(top level)"}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration in ${where}:\n${problems.join("\n")}`);
}
