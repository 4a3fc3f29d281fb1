import { parseArgs } from "node:util";
import { pino } from "pino";
import { startApp, StartupError, type RunningApp } from "./app.js";
import { ConfigError, loadConfig } from "./config/load-config.js";

const SHUTDOWN_GRACE_MS = 30_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string", short: "c" },
      port: { type: "string", short: "p" },
      host: { type: "string" },
    },
    strict: true,
  });
  const config = loadConfig({
    configPath: values.config ?? (process.env.FILES_CONFIG || undefined),
    port: values.port,
    host: values.host,
    env: process.env,
  });
  // Written on the event loop, one write(2) per line: pino's default (an asynchronous write through
  // libuv's thread pool per line) cost about 50 µs of CPU per request more, a thread hop on every
  // call (BENCHMARKS.md, "Per call"), and lines still buffered are lost if the process dies.
  const logger = pino({ level: config.server.logLevel, base: { service: "files" } }, pino.destination({ dest: 1, sync: true }));

  // Handlers go in before anything starts, so a signal during start-up is never Node's default kill.
  let app: RunningApp | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    if (!app) process.exit(0); // nothing is serving yet
    app.stop(SHUTDOWN_GRACE_MS).then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  // With TLS, SIGHUP reloads the certificate files (as nginx does); without, it keeps Node's default.
  if (config.server.tls) process.on("SIGHUP", () => app?.reloadTls?.());

  if (!config.auth && config.server.tls?.principalFrom === undefined) {
    logger.warn(
      { host: config.server.host },
      `authentication is off: anyone who can reach ${config.server.host} can read and delete every file. ` +
        "Set server.auth (api_keys or jwt) before exposing this server; without it the default host is loopback only",
    );
  }
  app = await startApp(config, logger);
  logger.info(
    {
      port: app.port,
      host: config.server.host,
      tls: config.server.tls ? { clientAuth: config.server.tls.clientAuth, minVersion: config.server.tls.minVersion } : false,
      storage: config.storage.type,
      metadata: config.metadataStore.type,
    },
    "listening",
  );
}

main().catch((err: unknown) => {
  // Start-up failures are for an operator: one clear line, no stack trace for known causes.
  const known = err instanceof ConfigError || err instanceof StartupError;
  process.stderr.write(`files: cannot start: ${known ? (err as Error).message : String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
