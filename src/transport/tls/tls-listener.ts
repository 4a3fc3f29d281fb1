import type { Logger } from "pino";
import type { TlsConfig } from "../../config/config.js";
import type { TlsSink } from "../../observability/sinks.js";
import type { OnePortServer, TlsListenOptions } from "../one-port-server.js";
import { CredentialsReloader } from "./credentials-reloader.js";
import { loadServerCredentials, type ServerCredentials } from "./server-credentials.js";

const DAY_MS = 86_400_000;

/** TLS for the one port, from the config: the first credentials, and their reloading once it listens. */
export interface TlsListener {
  options: TlsListenOptions;
  /** Watches the files (and serves `reload`) for `server`; call once it listens. */
  startReloading(server: OnePortServer): CredentialsReloader;
}

/** Reads and checks the certificate files; throws TlsCredentialsError, naming the file, when they cannot serve. */
export function openTlsListener(config: TlsConfig, logger: Logger, sink: TlsSink): TlsListener {
  const log = logger.child({ component: "tls" });
  const initial = loadServerCredentials(config);
  inUse(initial, log, sink, "loaded the serving certificate");
  return {
    options: {
      context: initial.context,
      clientAuth: config.clientAuth,
      principalFrom: config.principalFrom,
      onClientError: (err, remoteAddress) => {
        const code = (err as NodeJS.ErrnoException).code ?? "UNKNOWN";
        sink.tlsHandshakeFailed(code);
        log.debug({ code, remoteAddress, reason: err.message }, "refused a connection before its first request");
      },
    },
    startReloading: (server) => {
      const reloader = new CredentialsReloader(config, initial, (next) => server.setSecureContext(next.context), {
        reloaded: (next, reason) => {
          sink.tlsReload("ok");
          inUse(next, log, sink, `reloaded the serving certificate: ${reason}`);
        },
        failed: (err, reason) => {
          sink.tlsReload("error");
          log.error({ reason, err: err.message }, "could not reload the TLS certificate files; the certificate in use stays");
        },
      });
      reloader.start();
      return reloader;
    },
  };
}

function inUse(credentials: ServerCredentials, log: Logger, sink: TlsSink, message: string): void {
  const { certificate, notAfter } = credentials;
  sink.tlsCertificateInUse(notAfter);
  const details = { subject: certificate.subject.replace(/\n/g, ", "), serial: certificate.serialNumber, notAfter: notAfter.toISOString() };
  log.info(details, message);
  const left = notAfter.getTime() - Date.now();
  if (left <= 0) log.error(details, "the serving TLS certificate has expired: clients will refuse it");
  else if (new Date(certificate.validFrom).getTime() > Date.now()) log.error(details, "the serving TLS certificate is not valid yet: clients will refuse it");
  else if (left < 7 * DAY_MS) log.warn({ ...details, daysLeft: Math.floor(left / DAY_MS) }, "the serving TLS certificate expires within a week");
}
