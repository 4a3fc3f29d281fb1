import { createHash, randomBytes } from "node:crypto";
import { unlinkSync } from "node:fs";
import { lstat, open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { IntegrityError } from "../../../clients/ts/src/errors.js";
import type { File } from "../../../gen/ts/files/v1/files_pb.js";
import { CliError, errnoText, UsageError } from "../client.js";
import { integerValue, stringValue, writeJson, type Command, type Context, type Values } from "../command.js";
import { formatBytes, printable } from "../format.js";
import { Progress } from "../progress.js";

interface Span {
  offset: number;
  length: number | undefined;
}

/** `--range A-B` (inclusive, as in HTTP; `A-` runs to the end) or `--offset N [--length N]`. */
function span(values: Values): Span {
  const range = stringValue(values, "range");
  const offset = integerValue(values, "offset", 0);
  const length = integerValue(values, "length", 1);
  if (range !== undefined) {
    if (offset !== undefined || length !== undefined) throw new UsageError("--range cannot be combined with --offset or --length");
    const match = /^(\d+)-(\d*)$/.exec(range);
    if (!match) throw new UsageError(`--range must look like A-B or A- (byte positions, B inclusive), not '${range}'`);
    const first = Number(match[1]);
    if (match[2] === "") return { offset: first, length: undefined };
    const last = Number(match[2]);
    if (last < first) throw new UsageError(`--range ${range}: the end comes before the start`);
    return { offset: first, length: last - first + 1 };
  }
  return { offset: offset ?? 0, length };
}

/** The stored filename reduced to a safe name in the current directory (never a path), else the id. */
function defaultName(file: File): string {
  const name = basename(file.filename.replaceAll("\\", "/"));
  return name && name !== "." && name !== ".." && !/[\u0000-\u001f]/.test(name) ? name : file.id;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Where the bytes go: a temp file renamed into place on success, or stdout. */
interface Sink {
  write(chunk: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

async function fileSink(target: string): Promise<Sink> {
  // Same directory, so the final rename is atomic and never crosses file systems.
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString("hex")}.part`);
  let handle: FileHandle;
  try {
    handle = await open(temp, "wx");
  } catch (err) {
    throw new CliError(`cannot write ${dirname(target)}: ${errnoText(err as NodeJS.ErrnoException)}`);
  }
  // Ctrl-C must not leave a partial temp file behind.
  const onSigint = () => {
    try {
      unlinkSync(temp);
    } catch {
      /* already gone */
    }
    process.exit(130);
  };
  process.once("SIGINT", onSigint);
  let open_ = true;
  const close = async () => {
    process.off("SIGINT", onSigint);
    if (open_) {
      open_ = false;
      await handle.close();
    }
  };
  return {
    async write(chunk) {
      try {
        await handle.write(chunk);
      } catch (err) {
        throw new CliError(`cannot write ${temp}: ${errnoText(err as NodeJS.ErrnoException)}`);
      }
    },
    async commit() {
      await handle.sync();
      await close();
      try {
        await rename(temp, target);
      } catch (err) {
        throw new CliError(`cannot write ${target}: ${errnoText(err as NodeJS.ErrnoException)}`);
      }
    },
    async discard() {
      await close().catch(() => undefined);
      await rm(temp, { force: true });
    },
  };
}

function stdoutSink(stdout: NodeJS.WriteStream): Sink {
  return {
    async write(chunk) {
      if (stdout.write(chunk)) return;
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          stdout.off("drain", done);
          stdout.off("error", done);
          if (err) reject(err);
          else resolve();
        };
        stdout.once("drain", done);
        stdout.once("error", done);
      });
    },
    commit: async () => {},
    discard: async () => {},
  };
}

export const download: Command = {
  name: "download",
  summary: "download a file, or a byte range of it",
  synopsis: "download ID [-o PATH] [--range A-B | --offset N [--length N]]",
  optionsHelp: [
    ["-o, --output PATH", "a file (replaced), a directory, or - for stdout (default: the stored filename, never replacing a file)"],
    ["--range A-B", "bytes A to B inclusive, counted from 0; A- runs to the end"],
    ["--offset N", "first byte to send"],
    ["--length N", "number of bytes to send (default: to the end)"],
  ],
  notes:
    "The bytes go to a temp file renamed into place once complete. A whole-file download is checked\n" +
    "against the file's SHA-256; on a mismatch it fails and keeps nothing.",
  options: {
    output: { type: "string", short: "o" },
    range: { type: "string" },
    offset: { type: "string" },
    length: { type: "string" },
  },
  positionals: ["ID"],
  async run(ctx, [id], values) {
    const { offset, length } = span(values);
    const output = stringValue(values, "output");
    const whole = offset === 0 && length === undefined;

    let file: File | undefined;
    let sink: Sink | undefined;
    let target = "";
    let progress: Progress | undefined;
    let received = 0;
    // Hashed here too, for the summary line; the library verifies whole files itself.
    const hash = createHash("sha256");
    try {
      // The library reads in windows (bounded memory), resumes a broken stream from the bytes
      // already written, and checks a whole file against its SHA-256 before resolving.
      file = await ctx.client.download(
        id!,
        async (chunk) => {
          hash.update(chunk);
          await sink!.write(chunk);
          received += chunk.length;
          progress!.add(chunk.length);
        },
        {
          offset,
          length,
          onFile: async (answer) => {
            const size = Number(answer.bytes);
            const expected = Math.max(0, Math.min(length === undefined ? size : offset + length, size) - offset);
            ({ sink, target } = await openSink(ctx, answer, output));
            progress = new Progress(ctx.stderr, "downloaded", target === "-" ? `${answer.id} (stdout)` : printable(target), expected);
          },
        },
      );
      if (!sink || !progress) throw new CliError("the service answered without the file's metadata");
      await sink.commit();
      progress.finish();
      const digest = hash.digest("hex");
      const verified = whole && file.sha256 !== "";
      if (whole && !verified) ctx.stderr.write(`warning: ${file.id} has no stored SHA-256; the download was not verified\n`);
      if (target === "-") return;
      if (ctx.json) {
        writeJson(ctx, { id: file.id, path: target, offset, bytes: received, sha256: digest, verified });
      } else {
        ctx.stdout.write(`${printable(target)}: ${formatBytes(received)}${verified ? ", SHA-256 verified" : ""}\n`);
      }
    } catch (err) {
      progress?.abandon();
      await sink?.discard();
      if (err instanceof IntegrityError) {
        throw new CliError(`${err.message}${target === "-" ? " (the bytes written to stdout are corrupt)" : "; nothing was saved"}`);
      }
      throw err;
    }
  },
};

async function openSink(ctx: Context, file: File, output: string | undefined): Promise<{ sink: Sink; target: string }> {
  if (output === "-") return { sink: stdoutSink(ctx.stdout), target: "-" };
  let target = output ?? defaultName(file);
  let replace = output !== undefined;
  if (output !== undefined && (await isDirectory(output))) {
    target = join(output, defaultName(file));
    replace = false;
  }
  // A name taken from the server never silently replaces a local file.
  if (!replace && (await exists(target))) {
    throw new CliError(`${target} already exists; pass -o PATH to choose where to write (an existing file there is replaced)`);
  }
  return { sink: await fileSink(target), target };
}
