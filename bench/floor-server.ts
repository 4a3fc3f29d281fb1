/**
 * The floor (target floor): the cheapest Node server that does the work an upload and a download
 * of this service cannot avoid, on the same store, so the service's own cost per GiB can be told
 * from what any Node server pays for moving the bytes:
 *  - PUT /x/{key}: the body piped through SHA-256 into the store; answers {"id","bytes","sha256"};
 *  - GET /x/{key}: the object streamed back;
 *  - DELETE /x/{key}.
 * No metadata, auth, framing or limits. Local storage: a temp file in the store's directory,
 * flushed to disk and renamed into place, the directory synced (what the service's local store
 * does); S3: lib-storage's Upload with the service's part size (8 MiB) and concurrency (4), and a
 * streamed GetObject, through the service's own S3 client factory with the same payload_signing,
 * so both sign (or skip signing) the same bytes.
 *
 * bench/servers.ts runs it as a process of its own, so its CPU can be read: the store in
 * FLOOR_CONFIG (JSON, a FloorConfig), and it prints {"port":N} once it listens on 127.0.0.1. It
 * exits when its stdin closes.
 */
import { randomUUID, createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, GetObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { PayloadSigning } from "../src/config/config.js";
import { createS3Client } from "../src/storage/s3-client.js";
import { PART_SIZE, QUEUE_SIZE, type S3Target } from "./s3.js";

export type FloorConfig = { storage: "local"; dir: string } | { storage: "s3"; s3: S3Target; payloadSigning: PayloadSigning | undefined };

interface Store {
  /** Stores `body` (already hashed on its way) under `key`. */
  put(key: string, body: Transform): Promise<void>;
  /** Streams the object into `res`, with its length. */
  get(key: string, res: http.ServerResponse): Promise<void>;
  remove(key: string): Promise<void>;
}

function localStore(dir: string): Store {
  const tmpDir = join(dir, ".tmp");
  return {
    async put(key, body) {
      await mkdir(tmpDir, { recursive: true });
      const tmp = join(tmpDir, randomUUID());
      await pipeline(body, createWriteStream(tmp, { flags: "wx", flush: true }));
      await rename(tmp, join(dir, key));
      const handle = await open(dir, "r"); // the rename made durable, as the service does
      await handle.sync().finally(() => handle.close());
    },
    async get(key, res) {
      const path = join(dir, key);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": (await stat(path)).size });
      await pipeline(createReadStream(path, { highWaterMark: 256 * 1024 }), res);
    },
    remove: (key) => unlink(join(dir, key)),
  };
}

function s3Store(target: S3Target, payloadSigning: PayloadSigning | undefined): Store {
  const client = createS3Client({ region: target.region, endpointUrl: target.endpoint, accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey, payloadSigning });
  const Bucket = target.bucket;
  return {
    async put(key, body) {
      const upload = new Upload({ client, queueSize: QUEUE_SIZE, partSize: PART_SIZE, leavePartsOnError: false, params: { Bucket, Key: key, Body: body, ContentType: "application/octet-stream" } });
      await upload.done();
    },
    async get(key, res) {
      const out = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": out.ContentLength ?? 0 });
      await pipeline(out.Body as NodeJS.ReadableStream, res);
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
    },
  };
}

/** The request body with a SHA-256 taken of every chunk as it passes. */
function hashing(req: http.IncomingMessage) {
  const hash = createHash("sha256");
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  req.pipe(tap);
  req.once("error", (err) => tap.destroy(err));
  return { tap, result: () => ({ bytes, sha256: hash.digest("hex") }) };
}

async function handle(store: Store, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const key = /^\/x\/([A-Za-z0-9._-]+)$/.exec(req.url ?? "")?.[1];
  if (!key) {
    res.writeHead(404).end();
    return;
  }
  if (req.method === "PUT") {
    const body = hashing(req);
    await store.put(key, body.tap);
    const answer = JSON.stringify({ id: key, ...body.result() });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) }).end(answer);
  } else if (req.method === "GET") {
    await store.get(key, res);
  } else if (req.method === "DELETE") {
    await store.remove(key);
    res.writeHead(200).end();
  } else {
    res.writeHead(405).end();
  }
}

const config = JSON.parse(process.env.FLOOR_CONFIG ?? "null") as FloorConfig | null;
if (!config) throw new Error("FLOOR_CONFIG is not set");
const store = config.storage === "local" ? localStore(config.dir) : s3Store(config.s3, config.payloadSigning);
if (config.storage === "local") await mkdir(config.dir, { recursive: true });
const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  handle(store, req, res).catch((err: unknown) => {
    if (res.headersSent) res.destroy(err as Error);
    else res.writeHead(500, { "content-type": "text/plain" }).end(String(err));
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
// Never outlive the harness; exit (not die) on SIGTERM, so a --cpu-prof profile gets written.
process.stdin.on("close", () => process.exit(0));
process.once("SIGTERM", () => process.exit(0));
process.stdin.resume();
