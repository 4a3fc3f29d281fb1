import { unwatchFile, watchFile } from "node:fs";
import type { TlsConfig } from "../../config/config.js";
import { loadServerCredentials, type ServerCredentials } from "./server-credentials.js";

export interface ReloadEvents {
  /** New credentials are in use for new connections. */
  reloaded(credentials: ServerCredentials, reason: string): void;
  /** The files could not be used; the credentials in use stay. */
  failed(err: Error, reason: string): void;
}

// Certificate managers write the certificate and the key one after the other: wait for both.
const SETTLE_MS = 250;

/**
 * Watches the certificate, key and client CA files (polling their stat, which also sees a
 * symlink swapped under them, as Kubernetes does with mounted secrets) and reloads them on change
 * or on request (SIGHUP). Files that do not load are reported and the old credentials stay.
 */
export class CredentialsReloader {
  private readonly files: string[];
  private current: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly onChange = () => this.schedule("the certificate files changed");

  constructor(
    private readonly config: TlsConfig,
    initial: ServerCredentials,
    private readonly apply: (credentials: ServerCredentials) => void,
    private readonly events: ReloadEvents,
  ) {
    this.files = [config.certFile, config.keyFile, ...(config.clientCaFile !== undefined && config.clientAuth !== "none" ? [config.clientCaFile] : [])];
    this.current = fingerprint(initial);
  }

  start(): void {
    if (this.config.reloadIntervalMs <= 0) return;
    for (const file of this.files) watchFile(file, { interval: this.config.reloadIntervalMs, persistent: false }, this.onChange);
  }

  stop(): void {
    clearTimeout(this.timer);
    for (const file of this.files) unwatchFile(file, this.onChange);
  }

  /** Loads the files now; resolves true when new credentials went into use. */
  reload(reason: string): boolean {
    clearTimeout(this.timer);
    let next: ServerCredentials;
    try {
      next = loadServerCredentials(this.config);
    } catch (err) {
      this.events.failed(err as Error, reason);
      return false;
    }
    const print = fingerprint(next);
    if (print === this.current) return false;
    this.apply(next);
    this.current = print;
    this.events.reloaded(next, reason);
    return true;
  }

  private schedule(reason: string): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(reason), SETTLE_MS);
    this.timer.unref();
  }
}

function fingerprint(credentials: ServerCredentials): string {
  const { cert, key, ca } = credentials.context;
  return JSON.stringify([cert, key, ca]);
}
