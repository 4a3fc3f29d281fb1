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
  | { type: "postgres"; url?: string; host?: string; port?: number; db?: string; user?: string; password?: string };

export interface AuthConfig {
  apiKeys: Array<{ key: string; principal: string }>;
  jwt?: {
    jwksUrl?: string;
    publicKey?: string;
    issuer: string;
    audience: string;
    principalClaim: string;
    clockToleranceSeconds?: number;
  };
}
