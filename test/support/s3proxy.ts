/**
 * A second real S3 implementation for the tests: s3proxy (Apache-2.0, Java) with its jclouds
 * `filesystem` provider, so the suite is not written against one server's quirks.
 *
 * - `ensureS3ProxyInstalled()` fetches the pinned jar once with Maven (`mvn dependency:get`, from
 *   Maven Central into the local Maven repository) and copies it into the test cache
 *   (`<cache>/s3proxy-2.6.0/`), via the same cached-install helper as the other tools.
 *   `FILES_TEST_S3PROXY_JAR` names a jar to use instead (a machine without Maven).
 * - `startS3Proxy()` runs `java -jar <jar> --properties FILE` on a free loopback port with a fresh
 *   data directory, and waits until it answers HTTP. It needs Java 11 or later (17 on CI).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { cachedInstall, step } from "./cached-install.js";
import { freePort, guardChildProcess, OutputTail, waitForExit } from "./moto.js";

export const S3PROXY_VERSION = "2.6.0";
const JAR_NAME = `s3proxy-${S3PROXY_VERSION}-jar-with-dependencies.jar`;
const START_TIMEOUT_MS = 60_000;

/** The credentials the test s3proxy accepts (the same fake pair the tests give moto). */
export const S3PROXY_IDENTITY = { accessKeyId: "test", secretAccessKey: "test" };

function localMavenRepo(): string {
  return process.env.FILES_TEST_MAVEN_REPO ?? path.join(os.homedir(), ".m2", "repository");
}

const installJar = cachedInstall<string>({
  what: `s3proxy ${S3PROXY_VERSION}`,
  name: `s3proxy-${S3PROXY_VERSION}`,
  pinned: { artifact: `org.gaul:s3proxy:${S3PROXY_VERSION}:jar:jar-with-dependencies` },
  result: (dir) => path.join(dir, JAR_NAME),
  present: (dir) => existsSync(path.join(dir, JAR_NAME)),
  install: async (dir) => {
    const repo = localMavenRepo();
    await step(
      "'mvn dependency:get' of s3proxy failed (Maven and a JDK are needed; or set FILES_TEST_S3PROXY_JAR to a downloaded jar)",
      "mvn",
      [
        "-q",
        "-B",
        `-Dmaven.repo.local=${repo}`,
        "dependency:get",
        `-Dartifact=org.gaul:s3proxy:${S3PROXY_VERSION}:jar:jar-with-dependencies`,
        "-Dtransitive=false",
      ],
    );
    const fetched = path.join(repo, "org", "gaul", "s3proxy", S3PROXY_VERSION, JAR_NAME);
    await fs.copyFile(fetched, path.join(dir, JAR_NAME));
  },
});

/** The path of the s3proxy jar, fetched into the test cache on first use. */
export async function ensureS3ProxyInstalled(): Promise<string> {
  const explicit = process.env.FILES_TEST_S3PROXY_JAR?.trim();
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`FILES_TEST_S3PROXY_JAR names ${explicit}, which does not exist`);
    return explicit;
  }
  return await installJar();
}

export interface S3ProxyServer {
  endpoint: string;
  pid: number;
  port: number;
  /** Where the filesystem provider keeps buckets (one directory each). */
  dataDir: string;
  /** The server's output so far (its request log with `logLevel: "debug"`). */
  output(): string;
  stop(): Promise<void>;
}

export interface StartS3ProxyOptions {
  /** "debug" logs every request (LOG_LEVEL in s3proxy's environment). Default "warn". */
  logLevel?: "debug" | "info" | "warn";
}

async function answersHttp(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return true; // 403 without credentials: up
  } catch {
    return false;
  }
}

/** Starts s3proxy on a free loopback port with an empty filesystem store. */
export async function startS3Proxy(options: StartS3ProxyOptions = {}): Promise<S3ProxyServer> {
  const jar = await ensureS3ProxyInstalled();
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(jar, options);
    } catch (err) {
      if ((err as { retryable?: boolean }).retryable && attempt < 3) continue;
      throw err;
    }
  }
}

async function startOnce(jar: string, options: StartS3ProxyOptions): Promise<S3ProxyServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const home = await fs.mkdtemp(path.join(os.tmpdir(), "files-test-s3proxy-"));
  const dataDir = path.join(home, "data");
  await fs.mkdir(dataDir);
  const properties = path.join(home, "s3proxy.properties");
  await fs.writeFile(
    properties,
    [
      `s3proxy.endpoint=${endpoint}`,
      "s3proxy.authorization=aws-v2-or-v4",
      `s3proxy.identity=${S3PROXY_IDENTITY.accessKeyId}`,
      `s3proxy.credential=${S3PROXY_IDENTITY.secretAccessKey}`,
      "jclouds.provider=filesystem",
      `jclouds.filesystem.basedir=${dataDir}`,
      "",
    ].join("\n"),
  );
  const output = new OutputTail(200_000);
  const java = process.env.FILES_TEST_JAVA ?? "java";
  const child = spawn(java, ["-Xmx512m", "-XX:+UseSerialGC", "-jar", jar, "--properties", properties], {
    env: { ...process.env, LOG_LEVEL: options.logLevel ?? "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => output.push(d));
  child.stderr?.on("data", (d: Buffer) => output.push(d));
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });
  await new Promise<void>((resolve) => {
    child.once("spawn", resolve);
    child.once("error", () => resolve());
  });
  if (spawnError || child.pid === undefined) {
    await fs.rm(home, { recursive: true, force: true });
    throw new Error(`s3proxy failed to start: could not run ${java} (Java 11 or later is needed; FILES_TEST_JAVA picks one): ${spawnError?.message ?? "no pid"}`);
  }
  const guard = guardChildProcess(child.pid, { exitSignal: "SIGKILL", removeDir: home });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      if (!(await waitForExit(child, 5_000))) {
        child.kill("SIGKILL");
        await waitForExit(child, 5_000);
      }
    }
    guard.release();
    await fs.rm(home, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      guard.release();
      await fs.rm(home, { recursive: true, force: true });
      const tail = output.toString();
      throw Object.assign(new Error(`s3proxy exited during startup on port ${port}:\n${tail.slice(-4_000) || "(no output)"}`), {
        // s3proxy says "Failed to bind to /127.0.0.1:PORT" when another process took the probed port first.
        retryable: /Address already in use|BindException|Failed to bind/i.test(tail),
      });
    }
    if (await answersHttp(endpoint)) return { endpoint, pid: child.pid, port, dataDir, output: () => output.toString(), stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`s3proxy did not answer HTTP on ${endpoint} within ${START_TIMEOUT_MS / 1000} s; output:\n${output.toString().slice(-4_000)}`);
    }
    await sleep(100);
  }
}
