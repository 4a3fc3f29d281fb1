import { CliError } from "../client.js";
import { writeJson, type Command } from "../command.js";
import { fileJson, keyValueLines } from "../format.js";

export const get: Command = {
  name: "get",
  summary: "show a file's metadata",
  synopsis: "get ID",
  optionsHelp: [],
  options: {},
  positionals: ["ID"],
  async run(ctx, [id]) {
    const { file } = await ctx.client.rpc.getFile({ fileId: id! });
    if (!file) throw new CliError("the service answered without a file");
    if (ctx.json) writeJson(ctx, fileJson(file));
    else ctx.stdout.write(keyValueLines(file));
  },
};
