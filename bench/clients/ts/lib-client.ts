/**
 * The bench's client through the TypeScript client library (targets tslib and tslibstream), run
 * as its own process so its memory is its own: the line protocol of bench/clients/go/main.go for
 * large transfers (upload, download, delete). The payload is bench/payload.ts's; downloads are
 * hashed as they arrive and answered with their SHA-256 for the harness to check.
 *
 *   node --import tsx bench/clients/ts/lib-client.ts HOST:PORT [--stream] [--ca FILE]
 *
 * The library's defaults, as a user gets them: above 64 MiB an upload goes in parallel parts
 * through the Uploads API; --stream sends every upload as one UploadFile stream instead.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { connect } from "../../../clients/ts/src/node.js";
import { Payload, StreamDigest } from "../../payload.js";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { stream: { type: "boolean", default: false }, ca: { type: "string" } } });
const addr = positionals[0];
if (!addr) {
  process.stderr.write("usage: lib-client.ts HOST:PORT [--stream] [--ca FILE]\n");
  process.exit(2);
}
const files = connect({
  url: `${values.ca ? "https" : "http"}://${addr}`,
  ...(values.ca && { ca: readFileSync(values.ca) }),
  ...(values.stream && { partThreshold: Number.MAX_SAFE_INTEGER }),
});

type Request = { op: "upload"; size: number; sha256: string } | { op: "download"; id: string } | { op: "delete"; id: string };

async function handle(req: Request): Promise<object> {
  switch (req.op) {
    case "upload": {
      const t0 = performance.now();
      const file = await files.upload(new Payload(req.size).blocks(), { purpose: "user_data", filename: "bench.bin", size: req.size });
      return { id: file.id, bytes: Number(file.bytes), sha256: file.sha256, seconds: (performance.now() - t0) / 1000 };
    }
    case "download": {
      const t0 = performance.now();
      const digest = new StreamDigest();
      let chunks = 0;
      await files.download(req.id, (chunk) => {
        digest.update(chunk);
        chunks++;
      });
      return { bytes: digest.bytes, sha256: digest.digest(), chunks, seconds: (performance.now() - t0) / 1000 };
    }
    case "delete":
      await files.delete(req.id);
      return {};
    default:
      throw new Error(`unknown op ${(req as { op: string }).op}`);
  }
}

// One request at a time, as the harness sends them.
for await (const line of createInterface({ input: process.stdin })) {
  let reply: object;
  try {
    reply = await handle(JSON.parse(line) as Request);
  } catch (err) {
    reply = { error: err instanceof Error ? err.message : String(err) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
files.close();
