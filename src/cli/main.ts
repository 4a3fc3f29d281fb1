#!/usr/bin/env node
/**
 * `files`: a command-line client of the Files service over gRPC. It is a client of the public API
 * only (the generated code and Connect), never of the server's internals.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createSecureContext } from "node:tls";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { FilesError } from "../../clients/ts/src/errors.js";
import { CliError, describeConnectError, errnoText, filesClient, UsageError, type ClientTls } from "./client.js";
import type { Command, Context, Values } from "./command.js";
import { remove } from "./commands/delete.js";
import { download } from "./commands/download.js";
import { get } from "./commands/get.js";
import { list } from "./commands/list.js";
import { upload } from "./commands/upload.js";

const DEFAULT_URL = "http://127.0.0.1:8321";
const COMMANDS: Command[] = [upload, list, get, download, remove];

const GLOBAL_OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  "ca-file": { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} satisfies ParseArgsOptionsConfig;

const GLOBAL_HELP: [string, string][] = [
  ["--url URL", `the service (default: $FILES_URL, else ${DEFAULT_URL})`],
  ["--token TOKEN", "sent as 'authorization: Bearer TOKEN' (default: $FILES_TOKEN)"],
  ["--ca-file FILE", "for https://, trust these PEM CAs, not the system's (default: $FILES_CA_FILE)"],
  ["--cert FILE", "for https://, a PEM client certificate, with --key (default: $FILES_CERT)"],
  ["--key FILE", "its unencrypted PEM private key (default: $FILES_KEY)"],
  ["--json", "print machine-readable JSON"],
  ["-h, --help", "show help"],
];

function optionLines(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([flags]) => flags.length));
  return rows.map(([flags, text]) => `  ${flags.padEnd(width)}  ${text}`);
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: files COMMAND [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    ...optionLines([...GLOBAL_HELP, ["--version", "print the version"]]),
    "",
    "Run 'files COMMAND --help' for a command's options.",
    "",
  ].join("\n");
}

function synopsis(command: Command): string {
  return `Usage: files ${command.synopsis} [--url URL] [--token TOKEN] [--ca-file FILE] [--cert FILE --key FILE] [--json]`;
}

function commandHelp(command: Command): string {
  return [
    synopsis(command),
    "",
    `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`,
    "",
    "Options:",
    ...optionLines([...command.optionsHelp, ...GLOBAL_HELP]),
    ...(command.notes ? ["", command.notes] : []),
    "",
  ].join("\n");
}

function version(): string {
  // package.json is two levels up from src/cli, three from dist/src/cli.
  for (let dir = import.meta.dirname, i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "s3-files-service" && pkg.version) return pkg.version;
    } catch {
      /* keep looking */
    }
  }
  return "unknown";
}

const VALUED_OPTIONS = new Set(["--url", "--token", "--ca-file", "--cert", "--key"]);

/** The command name: the first argument that is neither an option nor the value of a global option. */
function splitCommand(argv: string[]): { name: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") break;
    if (VALUED_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") return { name: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { name: undefined, rest: argv };
}

/** parseArgs, with its errors turned into short usage messages. */
function parse(args: string[], options: ParseArgsOptionsConfig): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (err) {
    const message = (err as Error).message.split(/\.\s/)[0]!.replace(/\.$/, "");
    throw new UsageError(message[0]!.toLowerCase() + message.slice(1));
  }
}

function serviceUrl(values: Values): string {
  const url = (typeof values.url === "string" ? values.url : undefined) ?? (process.env.FILES_URL || DEFAULT_URL);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL, not '${url}'`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`--url must be an http:// or https:// URL, not '${url}'`);
  }
  return url.replace(/\/+$/, "");
}

/** The option's value, else the environment variable's (an empty one counts as unset). */
function optionOrEnv(values: Values, name: string, env: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : process.env[env] || undefined;
}

function readPem(option: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read --${option} ${path}: ${errnoText(err as NodeJS.ErrnoException)}`);
  }
}

/** --ca-file, --cert and --key, read and checked before any connection is made. */
function clientTls(values: Values, url: string): ClientTls {
  const caFile = optionOrEnv(values, "ca-file", "FILES_CA_FILE");
  const certFile = optionOrEnv(values, "cert", "FILES_CERT");
  const keyFile = optionOrEnv(values, "key", "FILES_KEY");
  if (caFile === undefined && certFile === undefined && keyFile === undefined) return {};
  if (!url.startsWith("https://")) {
    // From the environment they may be meant for another service: plaintext simply ignores them.
    const given = ["ca-file", "cert", "key"].filter((name) => typeof values[name] === "string").map((name) => `--${name}`);
    if (given.length === 0) return {};
    throw new UsageError(`${given.join(", ")} need${given.length > 1 ? "" : "s"} an https:// --url, not '${url}'`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(certFile === undefined ? "--key needs --cert (the client certificate)" : "--cert needs --key (its private key)");
  }
  const tls: ClientTls = {};
  if (caFile !== undefined) {
    tls.ca = readPem("ca-file", caFile);
    if (!tls.ca.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) {
      throw new UsageError(`--ca-file ${caFile} holds no PEM certificate`);
    }
    try {
      createSecureContext({ ca: tls.ca });
    } catch (err) {
      throw new UsageError(`--ca-file ${caFile} is not a readable PEM certificate: ${(err as Error).message}`);
    }
  }
  if (certFile !== undefined && keyFile !== undefined) {
    tls.cert = readPem("cert", certFile);
    tls.key = readPem("key", keyFile);
    try {
      createSecureContext({ cert: tls.cert, key: tls.key, passphrase: "" });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH" || /mismatch/i.test(e.message)
        ? `--key ${keyFile} is not the private key of --cert ${certFile}`
        : /bad decrypt|bad password|passphrase/i.test(e.message)
          ? `--key ${keyFile} is encrypted; give the CLI an unencrypted key`
          : `--cert ${certFile} / --key ${keyFile} are not a usable PEM certificate and key: ${e.message}`;
      throw new UsageError(why);
    }
  }
  return tls;
}

async function main(argv: string[]): Promise<number> {
  const { name, rest } = splitCommand(argv);
  let command: Command | undefined;
  let url = "";
  let tls: ClientTls = {};
  let positionals: string[] = [];
  try {
    if (name === undefined || name === "help") {
      const { values, positionals: topics } = parse(rest, GLOBAL_OPTIONS);
      if (values.version) {
        process.stdout.write(`files ${version()}\n`);
        return 0;
      }
      if (name === "help" || values.help) {
        const topic = topics[0] === undefined ? undefined : COMMANDS.find((c) => c.name === topics[0]);
        if (topics[0] !== undefined && !topic) throw new UsageError(`unknown command '${topics[0]}'`);
        process.stdout.write(topic ? commandHelp(topic) : mainHelp());
        return 0;
      }
      throw new UsageError("a command is required");
    }
    command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command '${name}'`);
    const parsed = parse(rest, { ...GLOBAL_OPTIONS, ...command.options });
    positionals = parsed.positionals;
    const { values } = parsed;
    if (values.help) {
      process.stdout.write(commandHelp(command));
      return 0;
    }
    if (values.version) {
      process.stdout.write(`files ${version()}\n`);
      return 0;
    }
    const required = command.positionals.filter((p) => !p.endsWith("?"));
    if (positionals.length < required.length) throw new UsageError(`missing ${required[positionals.length]}`);
    if (positionals.length > command.positionals.length) throw new UsageError(`unexpected argument '${positionals[command.positionals.length]}'`);
    url = serviceUrl(values);
    const token = typeof values.token === "string" ? values.token : process.env.FILES_TOKEN || undefined;
    tls = clientTls(values, url);
    const ctx: Context = { client: filesClient(url, token, tls), url, json: values.json === true, stdout: process.stdout, stderr: process.stderr };
    await command.run(ctx, positionals, values);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      // The synopsis and where to find more, not the whole help: the error line stays visible.
      const usage = command ? `${synopsis(command)}\nRun 'files ${command.name} --help' for its options.\n` : mainHelp();
      process.stderr.write(`files: ${err.message}\n${usage}`);
      return 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(`files: ${err.message}\n`);
      return 1;
    }
    // The library's errors keep the call's ConnectError as their cause; an IntegrityError has none.
    const failed = err instanceof FilesError && err.cause instanceof ConnectError ? err.cause : err;
    if (failed instanceof ConnectError) {
      const fileId = command?.positionals[0] === "ID" ? positionals[0] : undefined;
      process.stderr.write(`files: ${describeConnectError(failed, url, fileId, tls.cert !== undefined)}\n`);
      return 1;
    }
    if (failed instanceof FilesError) {
      process.stderr.write(`files: ${failed.message}\n`);
      return 1;
    }
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === "EPIPE") return 1; // the reader went away (e.g. `| head`): nothing useful to say
    // Unexpected: keep the stack, it is a bug worth reporting.
    process.stderr.write(`files: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

// A closed pipe on stdout surfaces as an async 'error' event; without a listener Node would crash.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(1);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
