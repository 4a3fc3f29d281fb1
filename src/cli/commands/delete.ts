import { CliError } from "../client.js";
import { writeJson, type Command } from "../command.js";

export const remove: Command = {
  name: "delete",
  summary: "delete a file's bytes and metadata",
  synopsis: "delete ID",
  optionsHelp: [],
  options: {},
  positionals: ["ID"],
  async run(ctx, [id]) {
    const res = await ctx.client.rpc.deleteFile({ fileId: id! });
    if (!res.deleted) throw new CliError(`the service did not delete ${id}`);
    if (ctx.json) writeJson(ctx, { id: res.id, object: "file", deleted: res.deleted });
    else ctx.stdout.write(`deleted ${res.id}\n`);
  },
};
