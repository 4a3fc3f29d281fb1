import { ListOrder, type File } from "../../../gen/ts/files/v1/files_pb.js";
import { UsageError } from "../client.js";
import { integerValue, stringValue, writeJson, type Command } from "../command.js";
import { fileJson, fileTable, PURPOSES } from "../format.js";

export const list: Command = {
  name: "list",
  summary: "list files, newest first",
  synopsis: "list [--purpose P] [--order asc|desc] [--limit N] [--after ID] [--all]",
  optionsHelp: [
    ["--purpose P", "only files with this purpose"],
    ["--order asc|desc", "by creation time (default desc)"],
    ["--limit N", "files per page, 1 to 10000 (default: the service's, 10000)"],
    ["--after ID", "start after this file (the previous page's last id)"],
    ["--all", "follow every page, not just the first"],
  ],
  options: {
    purpose: { type: "string" },
    order: { type: "string" },
    limit: { type: "string" },
    after: { type: "string" },
    all: { type: "boolean" },
  },
  positionals: [],
  async run(ctx, _positionals, values) {
    const purposeText = stringValue(values, "purpose");
    const purpose = purposeText === undefined ? undefined : PURPOSES.get(purposeText);
    if (purposeText !== undefined && purpose === undefined) {
      throw new UsageError(`unknown purpose '${purposeText}' (one of ${[...PURPOSES.keys()].join(", ")})`);
    }
    const orderText = stringValue(values, "order");
    if (orderText !== undefined && orderText !== "asc" && orderText !== "desc") {
      throw new UsageError(`--order must be 'asc' or 'desc', not '${orderText}'`);
    }
    const order = orderText === "asc" ? ListOrder.ASC : orderText === "desc" ? ListOrder.DESC : ListOrder.UNSPECIFIED;
    const limit = integerValue(values, "limit", 1, 10_000);

    const files: File[] = [];
    let after = stringValue(values, "after") ?? "";
    let hasMore: boolean;
    for (;;) {
      const page = await ctx.client.rpc.listFiles({ after, limit, order, purpose });
      files.push(...page.data);
      hasMore = page.hasMore;
      if (!values.all || !hasMore || !page.lastId) break;
      after = page.lastId;
    }

    if (ctx.json) {
      writeJson(ctx, {
        object: "list",
        data: files.map(fileJson),
        has_more: hasMore,
        first_id: files[0]?.id ?? null,
        last_id: files.at(-1)?.id ?? null,
      });
      return;
    }
    if (files.length === 0) ctx.stderr.write("no files\n");
    else ctx.stdout.write(fileTable(files));
    if (hasMore) ctx.stderr.write(`more files follow: pass --all, or --after ${files.at(-1)!.id}\n`);
  },
};
