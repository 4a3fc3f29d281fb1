import type { AccessPolicy, Attributes } from "../files/access-policy.js";
import type { DefaultTtls } from "../files/default-ttl.js";

/** The validated, typed configuration the rest of the program reads. Built by load-config.ts. */
export interface Config {
  server: {
    host: string;
    port: number;
    logLevel: string;
    maxFileBytes: number;
    /** Per gRPC/Connect message, in both directions. */
    maxMessageBytes: number;
    /** Largest file an Upload (in parts) may declare. */
    maxUploadBytes: number;
    /** Largest single part of an Upload. */
    maxPartBytes: number;
    /** How long an Upload may stay pending. */
    uploadExpireAfterSeconds: number;
    /** Uploads (whole files and parts) streaming in at once: overall, and per principal. */
    maxConcurrentUploads: number;
    maxConcurrentUploadsPerPrincipal: number;
    /** Time allowed for a connection's first bytes and a request's headers. */
    headerTimeoutMs: number;
    /** A connection (HTTP/1.1) or stream (HTTP/2) with no traffic for this long is closed. */
    idleTimeoutMs: number;
    /** Unset: the port speaks plaintext (HTTP/2 cleartext and HTTP/1.1). */
    tls?: TlsConfig;
  };
  /** Unset: no authentication (the server then binds to loopback unless told otherwise). */
  auth?: AuthConfig;
  storage: S3StorageConfig | LocalFsStorageConfig;
  metadataStore: MetadataStoreConfig;
  /** From the provider config, for either provider type. */
  expiry: ExpiryConfig;
}

export interface ExpiryConfig {
  /** Per upload purpose: the expiry, in seconds after creation, when a client names none; null: never. */
  defaultTtlSeconds: DefaultTtls;
  reaper: {
    /** 0: no reaper (expired files stay hidden, but their objects and rows stay too). */
    intervalSeconds: number;
    batchSize: number;
  };
}

export interface S3StorageConfig {
  type: "remote::s3";
  bucket: string;
  region: string;
  endpointUrl?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  autoCreateBucket: boolean;
  forcePathStyle: boolean;
  keyPrefix: string;
  partSizeBytes: number;
  partConcurrency: number;
  requestChecksumCalculation: "WHEN_SUPPORTED" | "WHEN_REQUIRED";
  responseChecksumValidation: "WHEN_SUPPORTED" | "WHEN_REQUIRED";
  /** Server-side encryption asked for on every object written; unset: the bucket's default. */
  sse?: "AES256" | "aws:kms";
  /** Only with sse "aws:kms"; unset: the account's AWS-managed key. */
  sseKmsKeyId?: string;
  connectTimeoutMs: number;
  /** Per attempt, until the response headers (for a PUT, sending the body included). */
  requestTimeoutMs: number;
  /** Per S3 command, retries included. */
  maxAttempts: number;
  retryMode: "standard" | "adaptive";
  /** A PEM bundle of the CAs trusted for an https endpoint, instead of Node's built-in list. */
  caBundle?: string;
  /** false: the endpoint's certificate is not checked at all (logged loudly at start). */
  verifySsl: boolean;
  /** Whether SigV4 signs the SHA-256 of the bytes of each PutObject and UploadPart (see s3-client.ts). */
  payloadSigning: PayloadSigning;
}

export type PayloadSigning = "auto" | "always" | "never";

export interface LocalFsStorageConfig {
  type: "inline::localfs";
  storageDir: string;
}

export type MetadataStoreConfig =
  | { type: "sqlite"; dbPath: string }
  | {
      type: "postgres";
      url?: string;
      host?: string;
      port?: number;
      db?: string;
      user?: string;
      password?: string;
      /** Unset: whatever the url says (sslmode=...), else no TLS. */
      sslMode?: "disable" | "require" | "verify-full";
      /** PEM file of the CA(s) that sign the server's certificate (verify-full). */
      sslRootCert?: string;
    };

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  keyPassphrase?: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
  /** PEM file of the CA(s) whose client certificates are accepted. */
  clientCaFile?: string;
  /** none: no client certificates asked for; optional: asked, verified if sent; require: refused at the handshake without a valid one. */
  clientAuth: "none" | "optional" | "require";
  /** Which name of a verified client certificate is the caller's principal; unset: certificates name no principal. */
  principalFrom?: "subject_cn" | "san_uri" | "san_dns";
  /** When a call carries both a bearer token and a verified certificate, whose principal it is. */
  principalPrecedence: "token" | "certificate";
  /** How often the certificate files are checked for changes; 0: only on SIGHUP. */
  reloadIntervalMs: number;
}

export interface AuthConfig {
  apiKeys: Array<{ key: string; principal: string; attributes?: Attributes }>;
  /** Who may do what (see files/access-policy.ts). */
  /** Tokens no API key or JWT claims go to this endpoint (see auth/custom.ts). */
  custom?: { endpoint: string; timeoutMs: number; cacheTtlMs: number; cacheMaxEntries: number };
  /** Unset: owner_only. */
  accessPolicy?: AccessPolicy;
  /** "owner_only" (the default), "llama_stack_default", or "custom" (rules from the config). */
  accessPolicyName?: string;
  jwt?: {
    jwksUrl?: string;
    publicKey?: string;
    issuer: string;
    audience: string;
    principalClaim: string;
    clockToleranceSeconds?: number;
    /** Unset: Llama Stack's default mapping. */
    claimsMapping?: Record<string, string>;
  };
}
