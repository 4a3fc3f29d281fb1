import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stringify } from "yaml";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");

export interface ServerProcess {
  port: number;
  baseUrl: string;
  child: ChildProcess;
  /** Every line the server wrote to stdout and stderr so far. */
  output: string[];
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  /** A YAML document (object or text) written to a temp file and passed with --config; omitted → no --config. */
  config?: object | string;
  env?: Record<string, string>;
  cwd?: string;
  args?: string[];
  /** The server is configured with server.tls: baseUrl is https://. */
  https?: boolean;
}

/** What `npm start` runs after its build step: the compiled entry point (global-setup builds it once). */
export function serverCommand(args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: [join(REPO_ROOT, "dist/src/main.js"), ...args] };
}

/** Runs the server until it exits (for start-up failures); resolves with its exit code and output. */
export async function runServerToExit(options: StartOptions, timeoutMs = 30_000): Promise<{ code: number | null; output: string }> {
  const child = await spawnServer(options);
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((res) => child.once("exit", (c) => res(c)));
  clearTimeout(timer);
  return { code, output };
}

/** Starts the real server as a child process on a free port and waits until it listens. */
export async function startServer(options: StartOptions = {}): Promise<ServerProcess> {
  const child = await spawnServer({ ...options, args: ["--port", "0", ...(options.args ?? [])] });
  const output: string[] = [];
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => fail(new Error("the server did not start within 60 s")), 60_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${err.message}\n--- server output ---\n${output.join("\n")}`));
    };
    const onLine = (line: string) => {
      output.push(line);
      if (!line.startsWith("{")) return;
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "listening" && entry.port) {
          clearTimeout(timer);
          resolvePort(entry.port);
        }
      } catch {
        /* not a log line */
      }
    };
    lines(child.stdout!, onLine);
    lines(child.stderr!, onLine);
    child.once("exit", (code) => fail(new Error(`the server exited with code ${code} before listening`)));
  });
  return {
    port,
    baseUrl: `${options.https ? "https" : "http"}://127.0.0.1:${port}`,
    child,
    output,
    stop: (signal = "SIGTERM") =>
      new Promise((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res(child.exitCode);
        child.once("exit", (code) => res(code));
        child.kill(signal);
      }),
  };
}

async function spawnServer(options: StartOptions): Promise<ChildProcess> {
  const args = [...(options.args ?? [])];
  if (options.config !== undefined) {
    const dir = await mkdtemp(join(tmpdir(), "files-server-"));
    const path = join(dir, "files.yaml");
    await writeFile(path, typeof options.config === "string" ? options.config : stringify(options.config));
    args.unshift("--config", path);
  }
  const { command, args: fullArgs } = serverCommand(args);
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "info", ...options.env };
  delete env.FILES_CONFIG;
  if (!options.env?.PORT) delete env.PORT;
  return spawn(command, fullArgs, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (data: string) => {
    buffered += data;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
}

/** A remote::s3 provider config for the test S3 endpoint. */
export function s3ProviderConfig(endpoint: string, bucket: string, metadataStore: object, extra: object = {}): object {
  return {
    api: "files",
    provider_type: "remote::s3",
    config: {
      bucket_name: bucket,
      region: "us-east-1",
      endpoint_url: endpoint,
      // Fake keys for moto; real ones from the environment when S3_TEST_ENDPOINT is a MinIO or AWS.
      aws_access_key_id: process.env.AWS_ACCESS_KEY_ID || "test",
      aws_secret_access_key: process.env.AWS_SECRET_ACCESS_KEY || "test",
      metadata_store: metadataStore,
      ...extra,
    },
  };
}
