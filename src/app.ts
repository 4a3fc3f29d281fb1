import type { Logger } from "pino";
import type { Config } from "./config/config.js";
import { FilesService } from "./files/files-service.js";
import { UploadsService } from "./files/uploads-service.js";
import { UploadSlots } from "./files/upload-slots.js";
import type { FileRepository, ObjectStore, UploadRepository } from "./files/ports.js";
import { Reaper } from "./files/reaper.js";
import { openMetadata } from "./metadata/open.js";
import { FilesMetrics } from "./observability/metrics.js";
import { AccessControl, FILE_RESOURCE_TYPE } from "./files/access-control.js";
import { OWNER_ONLY_POLICY } from "./files/access-policy.js";
import { openAuthenticator } from "./auth/open-authenticator.js";
import { openObjectStore } from "./storage/open-store.js";
import { timedFileRepository, timedUploadRepository } from "./observability/timed-repositories.js";
import { createHttpHandlers } from "./transport/http-handler.js";
import { createOnePortServer, type OnePortServer } from "./transport/one-port-server.js";
import { openTlsListener, type TlsListener } from "./transport/tls/tls-listener.js";

/** A start-up failure already worded for an operator (it names the bucket, database or port). */
export class StartupError extends Error {
  override readonly name = "StartupError";
}

export interface RunningApp {
  port: number;
  /** Stops taking new connections, lets requests in flight finish for up to `graceMs`, then closes stores. */
  stop(graceMs: number): Promise<void>;
  /** TLS: reads the certificate files again now (SIGHUP); undefined without TLS. */
  reloadTls?: () => void;
}

/** Wires the adapters around the core from a validated config, and starts listening. */
export async function startApp(config: Config, logger: Logger): Promise<RunningApp> {
  const metrics = new FilesMetrics();
  // First: a certificate that cannot serve is a start-up error before any store is opened.
  let tls: TlsListener | undefined;
  try {
    tls = config.server.tls && openTlsListener(config.server.tls, logger, metrics);
  } catch (err) {
    throw new StartupError((err as Error).message, { cause: err });
  }
  const store = await openObjectStore(config.storage, {
    metrics,
    onS3Retry: (retry) => logger.warn(retry, "an S3 request failed; retrying"),
    onInsecureTls: (message, endpoint) => logger.warn({ endpoint, verifySsl: false }, message),
    onUnsupported: (operation, fallback, err) => logger.warn({ operation, err }, `the object store does not implement ${operation}: ${fallback}`),
    onAbortFailed: ({ key, uploadId, error, leftForLifecycle }) =>
      leftForLifecycle
        ? logger.warn({ key, uploadId }, "an unfinished multipart upload is left for the bucket's lifecycle rules: the store does not implement AbortMultipartUpload")
        : logger.error({ key, uploadId, err: error }, "could not abort the multipart upload of a failed or cancelled write; reconcile will find it"),
  }).catch((err: unknown) => {
    throw new StartupError(`object storage: ${(err as Error).message}`, { cause: err });
  });
  const metadata = await openMetadata(config.metadataStore).catch((err: unknown) => {
    throw new StartupError(`metadata store: ${(err as Error).message}`, { cause: err });
  });
  const repository = timedFileRepository(metadata.files, metrics);
  const keyPrefix = config.storage.type === "remote::s3" ? config.storage.keyPrefix : "";
  const onOrphanedObject = (key: string, err: unknown) => logger.warn({ key, err }, "could not remove an object; reconcile will find it");
  const defaultTtls = config.expiry.defaultTtlSeconds;
  // One line per refusal: who, what, on which file or upload, and the rule that decided.
  const access = new AccessControl(config.auth?.accessPolicy ?? OWNER_ONLY_POLICY, (refusal) =>
    logger.warn(
      {
        principal: refusal.principal,
        action: refusal.action,
        [refusal.resourceType === FILE_RESOURCE_TYPE ? "file_id" : "upload_id"]: refusal.resourceId,
        rule: refusal.rule,
        rule_description: refusal.reason,
        policy: config.auth?.accessPolicyName ?? "owner_only",
      },
      "access denied",
    ),
  );
  const files = new FilesService({
    access,
    store,
    repository,
    keyPrefix,
    maxFileBytes: config.server.maxFileBytes,
    defaultTtlSeconds: (purpose) => defaultTtls[purpose],
    uploadSlots: new UploadSlots({
      global: config.server.maxConcurrentUploads,
      perPrincipal: config.server.maxConcurrentUploadsPerPrincipal,
    }),
    onOrphanedObject,
  });
  const uploadRepository = timedUploadRepository(metadata.uploads, metrics);
  const uploads = new UploadsService({
    files,
    store,
    repository: uploadRepository,
    keyPrefix,
    maxUploadBytes: config.server.maxUploadBytes,
    maxPartBytes: config.server.maxPartBytes,
    ttlSeconds: config.server.uploadExpireAfterSeconds,
    onOrphanedObject,
  });
  const shutdown = new AbortController();
  const server = createOnePortServer(
    createHttpHandlers({
      files,
      uploads,
      logger,
      shutdown: shutdown.signal,
      maxMessageBytes: config.server.maxMessageBytes,
      metrics,
      authenticator: openAuthenticator(config.auth, config.server.tls),
      ready: async () => {
        await Promise.all([store.ping(), repository.ping()]);
      },
    }),
    { headerTimeoutMs: config.server.headerTimeoutMs, idleTimeoutMs: config.server.idleTimeoutMs },
    tls?.options,
  );
  let port: number;
  try {
    port = await server.listen(config.server.port, config.server.host);
  } catch (err) {
    await repository.close();
    const code = (err as NodeJS.ErrnoException).code;
    throw new StartupError(`cannot listen on ${config.server.host}:${config.server.port}: ${code ?? (err as Error).message}`, { cause: err });
  }
  const reaper = startReaper(config, { files: repository, uploads: uploadRepository, store, keyPrefix }, metrics, logger);
  const reloader = tls?.startReloading(server);
  return {
    port,
    ...(reloader && { reloadTls: () => void reloader.reload("SIGHUP") }),
    stop: async (graceMs) => {
      reloader?.stop();
      shutdown.abort();
      // Stopped before the repositories close, so no pass is cut off mid-item by a closed pool.
      await reaper.stop();
      return stopApp(server, repository, graceMs);
    },
  };
}

/** The background reaper of expired files and uploads; its failures are logged and it carries on. */
function startReaper(
  config: Config,
  ports: { files: FileRepository; uploads: UploadRepository; store: ObjectStore; keyPrefix: string },
  metrics: FilesMetrics,
  logger: Logger,
): Reaper {
  const log = logger.child({ component: "reaper" });
  const reaper = new Reaper({
    ...ports,
    intervalSeconds: config.expiry.reaper.intervalSeconds,
    batchSize: config.expiry.reaper.batchSize,
    events: {
      fileReaped: () => metrics.reaped.inc(),
      uploadExpired: () => metrics.reapedUploads.inc(),
      pass: (summary) => {
        const busy = summary.files.claimed > 0 || summary.uploads.claimed > 0;
        log[busy ? "info" : "debug"](summary, "reap batch");
      },
      error: (err, context) => log.warn({ err, ...context }, "reaper: step failed; a later pass retries it"),
    },
  });
  reaper.start();
  return reaper;
}

async function stopApp(server: OnePortServer, repository: FileRepository, graceMs: number): Promise<void> {
  const closed = server.close();
  server.closeIdle();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), graceMs)));
  if ((await Promise.race([closed, timedOut])) === "timeout") server.destroyAll();
  clearTimeout(timer);
  await repository.close();
}
