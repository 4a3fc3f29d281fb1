import { open } from "node:fs/promises";
import { basename, extname } from "node:path";
import { CliError, errnoText, UsageError } from "../client.js";
import { integerValue, stringValue, writeJson, type Command } from "../command.js";
import { fileJson, keyValueLines, printable, PURPOSES } from "../format.js";
import { Progress } from "../progress.js";

const DEFAULT_PURPOSE = "user_data";

// A few common types; anything else is left to the server's default (application/octet-stream).
const MIME_TYPES: Record<string, string> = {
  ".txt": "text/plain",
  ".md": "text/markdown",
  ".csv": "text/csv",
  ".html": "text/html",
  ".json": "application/json",
  ".jsonl": "application/jsonl",
  ".pdf": "application/pdf",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
};

export const upload: Command = {
  name: "upload",
  summary: "upload a file (streamed from disk)",
  synopsis: "upload PATH [--purpose P] [--expires-after SECONDS] [--mime-type T]",
  optionsHelp: [
    ["--purpose P", `${[...PURPOSES.keys()].filter((p) => !/output|results/.test(p)).join(", ")} (default ${DEFAULT_PURPOSE})`],
    ["--expires-after SECONDS", "expire this long after creation (3600 to 2592000)"],
    ["--mime-type T", "media type (default: from the extension, else application/octet-stream)"],
  ],
  options: {
    purpose: { type: "string" },
    "expires-after": { type: "string" },
    "mime-type": { type: "string" },
  },
  positionals: ["PATH"],
  async run(ctx, [path], values) {
    const purposeText = stringValue(values, "purpose") ?? DEFAULT_PURPOSE;
    const purpose = PURPOSES.get(purposeText);
    if (purpose === undefined) throw new UsageError(`unknown purpose '${purposeText}' (one of ${[...PURPOSES.keys()].join(", ")})`);
    const expiresAfter = integerValue(values, "expires-after", 1);
    const mimeType = stringValue(values, "mime-type") ?? MIME_TYPES[extname(path!).toLowerCase()] ?? "";

    const handle = await open(path!, "r").catch((err: NodeJS.ErrnoException) => {
      throw new CliError(`cannot read ${path}: ${errnoText(err)}`);
    });
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new CliError(`cannot upload ${path}: not a regular file`);
      const filename = basename(path!);
      const progress = new Progress(ctx.stderr, "uploaded", printable(filename), stat.size);
      let reported = 0;
      // The library streams it 1 MiB at a time (in parallel parts when large), checks the SHA-256
      // the service stored against what was read here, and cancels what it started on failure.
      let file;
      try {
        file = await ctx.client.upload(handle.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false }), {
          purpose,
          filename,
          mimeType,
          size: stat.size,
          expiresAfterSeconds: expiresAfter,
          onProgress: ({ bytes }) => {
            progress.add(bytes - reported);
            reported = bytes;
          },
        });
      } catch (err) {
        progress.abandon();
        throw err;
      }
      progress.finish();
      if (ctx.json) writeJson(ctx, fileJson(file));
      else ctx.stdout.write(keyValueLines(file));
    } finally {
      await handle.close();
    }
  },
};
