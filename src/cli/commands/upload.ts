import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { basename, extname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ExpiresAfterAnchor, UploadFileRequestSchema, type UploadFileRequest } from "../../../gen/ts/files/v1/files_pb.js";
import { CliError, errnoText, UsageError } from "../client.js";
import { integerValue, stringValue, writeJson, type Command } from "../command.js";
import { fileJson, keyValueLines, printable, PURPOSES } from "../format.js";
import { Progress } from "../progress.js";

const CHUNK_BYTES = 1024 * 1024;
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
      const hash = createHash("sha256");

      // The file goes out 1 MiB at a time as the transport takes it; it is never held whole.
      async function* messages(): AsyncGenerator<UploadFileRequest> {
        yield create(UploadFileRequestSchema, {
          payload: {
            case: "metadata",
            value: {
              filename,
              purpose,
              mimeType,
              sizeBytes: BigInt(stat.size),
              expiresAfter: expiresAfter === undefined ? undefined : { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: BigInt(expiresAfter) },
            },
          },
        });
        for await (const chunk of handle.createReadStream({ highWaterMark: CHUNK_BYTES, autoClose: false })) {
          const bytes = chunk as Buffer;
          hash.update(bytes);
          yield create(UploadFileRequestSchema, { payload: { case: "chunk", value: bytes } });
          progress.add(bytes.length);
        }
      }

      let file;
      try {
        file = (await ctx.client.uploadFile(messages())).file;
      } catch (err) {
        progress.abandon();
        throw err;
      }
      if (!file) throw new CliError("the service answered without a file");
      progress.finish();
      // The service verified what it received; this checks it received what was read here.
      const sent = hash.digest("hex");
      if (file.sha256 && file.sha256 !== sent) {
        throw new CliError(`SHA-256 mismatch after upload of ${path}: sent ${sent}, the service stored ${file.sha256} (file ${file.id})`);
      }
      if (ctx.json) writeJson(ctx, fileJson(file));
      else ctx.stdout.write(keyValueLines(file));
    } finally {
      await handle.close();
    }
  },
};
