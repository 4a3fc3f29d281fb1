/**
 * A throw-away PostgreSQL cluster for the test suite.
 *
 * `startPostgres()` runs `initdb` into a fresh temp dir and starts the server with `pg_ctl`
 * on a free loopback port (fsync off). `initdb` refuses to run as root, so as root the
 * binaries run as the `postgres` system user (created as `files-test-pg` when missing).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { freePort, guardChildProcess, runCommand, type ChildGuard } from "./moto.js";

export interface PostgresServer {
  /** `postgres://files@127.0.0.1:PORT/postgres` (trust auth, superuser `files`). */
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Takes the server down as a crash would (`pg_ctl stop -m immediate`), keeping its data dir. */
  halt(): Promise<void>;
  /** Starts a halted server again, on the same port and data dir. */
  restart(): Promise<void>;
  /** SIGSTOPs (freeze) or SIGCONTs (thaw) the postmaster and every backend: a hung database, not a refusing one. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
}

export interface StartPostgresOptions {
  /**
   * Serve TLS with this certificate and key (`ssl=on`); the files are copied into the cluster
   * directory, the key with mode 0600 as PostgreSQL demands. pg_hba.conf then has `hostssl`
   * lines only, so a plaintext TCP client is refused.
   */
  tls?: { certFile: string; keyFile: string };
}

const SUPERUSER = "files";
const FALLBACK_SYSTEM_USER = "files-test-pg";

interface RunAs {
  uid?: number;
  gid?: number;
  name: string;
}

function isExecutable(file: string): boolean {
  try {
    return statSync(file).isFile() && (statSync(file).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Directory holding initdb and pg_ctl: $PG_BIN_DIR, else PATH, else the newest /usr/lib/postgresql/N/bin. */
function findPgBinDir(): string {
  const candidates: string[] = [];
  if (process.env.PG_BIN_DIR) candidates.push(process.env.PG_BIN_DIR);
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) if (dir) candidates.push(dir);
  const debianRoot = "/usr/lib/postgresql";
  try {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    for (const v of versions) candidates.push(path.join(debianRoot, v, "bin"));
  } catch {
    /* not a Debian layout */
  }
  for (const dir of candidates) {
    if (isExecutable(path.join(dir, "initdb")) && isExecutable(path.join(dir, "pg_ctl"))) return dir;
  }
  throw new Error(
    "startPostgres failed: initdb/pg_ctl not found on PATH, in $PG_BIN_DIR or under /usr/lib/postgresql/*/bin " +
      "(install the PostgreSQL server binaries, or set PG_TEST_URL to use an existing server)",
  );
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  const uid = await runCommand("id", ["-u", name], { timeoutMs: 10_000 });
  const gid = await runCommand("id", ["-g", name], { timeoutMs: 10_000 });
  if (uid.code !== 0 || gid.code !== 0) return undefined;
  return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
}

let runAsPromise: Promise<RunAs> | undefined;

/** Who runs the PostgreSQL binaries: ourselves, or (as root) an unprivileged system user. */
function resolveRunAs(): Promise<RunAs> {
  runAsPromise ??= (async (): Promise<RunAs> => {
    if (process.getuid?.() !== 0) return { name: os.userInfo().username };
    for (const name of ["postgres", FALLBACK_SYSTEM_USER]) {
      const ids = await lookupUser(name);
      if (ids) return { name, ...ids };
    }
    const add = await runCommand(
      "useradd",
      ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", FALLBACK_SYSTEM_USER],
      { timeoutMs: 30_000 },
    );
    const ids = await lookupUser(FALLBACK_SYSTEM_USER); // may also have been created concurrently
    if (!ids) {
      throw new Error(
        `startPostgres failed: running as root, no 'postgres' user, and 'useradd ${FALLBACK_SYSTEM_USER}' failed ` +
          `(exit code ${add.code}): ${add.stderr || add.stdout}`,
      );
    }
    return { name: FALLBACK_SYSTEM_USER, ...ids };
  })().catch((err: unknown) => {
    runAsPromise = undefined;
    throw err;
  });
  return runAsPromise;
}

/** A temp root the server user can reach, short enough for a unix socket path. */
function tempRoot(runAs: RunAs): string {
  const tmp = os.tmpdir();
  try {
    const st = statSync(tmp);
    const reachable = runAs.uid === undefined || st.uid === runAs.uid || (st.mode & 0o001) !== 0;
    if (reachable && tmp.length <= 60) return tmp;
  } catch {
    /* fall through */
  }
  return "/tmp";
}

/** Environment without PG* variables that would redirect initdb/pg_ctl. */
function pgEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^PG/.test(k)) env[k] = v;
  env.LC_ALL = "C";
  env.LANG = "C";
  return env;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function readLogTail(logFile: string): Promise<string> {
  try {
    const text = await fs.readFile(logFile, "utf8");
    return text.trim().split("\n").slice(-30).join("\n");
  } catch {
    return "";
  }
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const binDir = findPgBinDir();
  const initdb = path.join(binDir, "initdb");
  const pgCtl = path.join(binDir, "pg_ctl");
  const runAs = await resolveRunAs();
  const asUser = { uid: runAs.uid, gid: runAs.gid };

  const root = await fs.mkdtemp(path.join(tempRoot(runAs), "files-test-pg-"));
  const dataDir = path.join(root, "data");
  const sockDir = path.join(root, "sock");
  const logFile = path.join(root, "postgres.log");
  let guard: ChildGuard | undefined;
  let started = false;
  let serverOptions = "";

  try {
    await fs.mkdir(sockDir, { mode: 0o700 });
    if (runAs.uid !== undefined && runAs.gid !== undefined) {
      await fs.chown(root, runAs.uid, runAs.gid);
      await fs.chown(sockDir, runAs.uid, runAs.gid);
    }
    const env = pgEnv();

    const init = await runCommand(
      initdb,
      ["-D", dataDir, "-A", "trust", "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"],
      { ...asUser, env, cwd: root, timeoutMs: 120_000 },
    );
    if (init.code !== 0) {
      throw new Error(
        `initdb failed (as user ${runAs.name}, exit code ${init.code ?? init.signal}): ${init.stderr || init.stdout || "(no output)"}`,
      );
    }
    const tlsOptions = options.tls ? await installTls(options.tls) : [];

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      serverOptions = [
        `-p ${port}`,
        `-k ${shellQuote(sockDir)}`,
        "-h 127.0.0.1",
        "-c fsync=off",
        "-c full_page_writes=off",
        "-c synchronous_commit=off",
        "-c max_connections=200",
        ...tlsOptions,
      ].join(" ");
      const start = await runCommand(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", serverOptions, "start"], {
        ...asUser,
        env,
        cwd: root,
        timeoutMs: 90_000,
      });
      if (start.code === 0) {
        started = true;
        await guardPostmaster();
        return makeServer(port);
      }
      const log = await readLogTail(logFile);
      const portClash = /could not bind|address already in use|could not create any TCP\/IP sockets|lock file .* already exists/i.test(log);
      if (portClash && attempt < 3) continue;
      throw new Error(
        `pg_ctl start failed (as user ${runAs.name}, port ${port}, exit code ${start.code ?? start.signal}): ` +
          `${start.stderr || start.stdout}\n--- server log ---\n${log || "(empty)"}`,
      );
    }
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }

  /** Copies the certificate and key next to the data, writes a hostssl-only pg_hba.conf, and returns the server options. */
  async function installTls(tls: NonNullable<StartPostgresOptions["tls"]>): Promise<string[]> {
    const certFile = path.join(root, "server.crt");
    const keyFile = path.join(root, "server.key");
    await fs.copyFile(tls.certFile, certFile);
    await fs.copyFile(tls.keyFile, keyFile);
    await fs.chmod(keyFile, 0o600);
    const hba = path.join(dataDir, "pg_hba.conf");
    await fs.writeFile(
      hba,
      ["# TYPE  DATABASE USER ADDRESS METHOD", "local all all trust", "hostssl all all 127.0.0.1/32 trust", "hostssl all all ::1/128 trust", ""].join("\n"),
    );
    if (runAs.uid !== undefined && runAs.gid !== undefined) {
      for (const file of [certFile, keyFile, hba]) await fs.chown(file, runAs.uid, runAs.gid);
    }
    return ["-c ssl=on", `-c ssl_cert_file=${shellQuote(certFile)}`, `-c ssl_key_file=${shellQuote(keyFile)}`];
  }

  async function guardPostmaster(): Promise<void> {
    const pidText = await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8");
    const pid = Number.parseInt(pidText.split("\n")[0] ?? "", 10);
    if (Number.isFinite(pid)) guard = guardChildProcess(pid, { exitSignal: "SIGQUIT", removeDir: root });
  }

  async function halt(): Promise<void> {
    if (!started) return;
    // This cluster runs with synchronous_commit off (speed): an immediate stop could then drop
    // commits its WAL writer had not written out yet, which a server with synchronous_commit on
    // (as in production) keeps. A checkpoint first makes every acknowledged commit survive the crash.
    const port = /-p (\d+)/.exec(serverOptions)?.[1] ?? "5432";
    const psql = existsSync(path.join(binDir, "psql")) ? path.join(binDir, "psql") : "psql";
    await runCommand(psql, ["-h", sockDir, "-p", port, "-U", SUPERUSER, "-d", "postgres", "-qAt", "-c", "checkpoint"], {
      ...asUser,
      env: pgEnv(),
      cwd: root,
      timeoutMs: 30_000,
    }).catch(() => undefined); // best effort: the stop below is what the tests need
    const stop = await runCommand(pgCtl, ["-D", dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], {
      ...asUser,
      env: pgEnv(),
      cwd: root,
      timeoutMs: 60_000,
    });
    if (stop.code !== 0) throw new Error(`pg_ctl stop failed (exit code ${stop.code ?? stop.signal}): ${stop.stderr || stop.stdout}`);
    started = false;
    guard?.release();
    guard = undefined;
  }

  async function restart(): Promise<void> {
    if (started) return;
    const start = await runCommand(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", serverOptions, "start"], {
      ...asUser,
      env: pgEnv(),
      cwd: root,
      timeoutMs: 90_000,
    });
    if (start.code !== 0) {
      throw new Error(`pg_ctl start (restart) failed (exit code ${start.code ?? start.signal}): ${start.stderr || start.stdout}\n${await readLogTail(logFile)}`);
    }
    started = true;
    await guardPostmaster();
  }

  /** The postmaster and its children (backends, background workers), from /proc. */
  async function clusterPids(): Promise<number[]> {
    const master = Number.parseInt((await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0] ?? "", 10);
    const children: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
        const stat = await fs.readFile(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        if (ppid === master) children.push(Number(entry));
      } catch {
        /* exited meanwhile */
      }
    }
    return [master, ...children];
  }

  async function signalCluster(signal: NodeJS.Signals): Promise<void> {
    for (const pid of await clusterPids()) {
      try {
        process.kill(pid, signal);
      } catch {
        /* exited meanwhile */
      }
    }
  }

  async function cleanup(): Promise<void> {
    await signalCluster("SIGCONT").catch(() => undefined); // a frozen cluster would ignore the stop
    if (started) {
      const stop = await runCommand(pgCtl, ["-D", dataDir, "-m", "immediate", "-w", "-t", "30", "stop"], {
        ...asUser,
        env: pgEnv(),
        cwd: root,
        timeoutMs: 60_000,
      }).catch((e: Error) => ({ code: -1, signal: null, stdout: "", stderr: e.message }));
      if (stop.code !== 0) {
        // Fall back to killing the postmaster directly.
        try {
          const pid = Number.parseInt((await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0] ?? "", 10);
          if (Number.isFinite(pid)) process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      started = false;
    }
    guard?.release();
    guard = undefined;
    if (existsSync(root)) await fs.rm(root, { recursive: true, force: true, maxRetries: 3 });
  }

  function makeServer(port: number): PostgresServer {
    let stopping: Promise<void> | undefined;
    return {
      url: `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`,
      port,
      stop: () => (stopping ??= cleanup()),
      halt,
      restart,
      freeze: () => signalCluster("SIGSTOP"),
      thaw: () => signalCluster("SIGCONT"),
    };
  }
}
