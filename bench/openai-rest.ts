/**
 * The OpenAI Files REST API as the benchmark drives it, for this service and the reference alike:
 * small uploads, retrieve, list pages, and the Uploads API (create, parts in parallel, complete) as
 * a large-transfer path. Plain node:http with a keep-alive agent, so the figures are the servers'.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { BenchClient } from "./clients.js";
import { BLOCK, MiB, type Payload } from "./payload.js";
import { keepAliveRequester, restBenchClient, sendBody } from "./rest-client.js";

export interface FileObject {
  id: string;
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
}

export interface ListPage {
  data: FileObject[];
  has_more: boolean;
  last_id?: string | null;
}

export class OpenAiRest {
  private readonly agent: http.Agent;
  private readonly send: ReturnType<typeof keepAliveRequester>["request"];

  /** An https:// baseUrl is TLS, trusting `ca` only. */
  constructor(
    readonly baseUrl: string,
    maxSockets = 64,
    ca?: Buffer,
  ) {
    const requester = keepAliveRequester(baseUrl, maxSockets, ca);
    this.agent = requester.agent;
    this.send = requester.request;
  }

  /** One request with a buffered body both ways; rejects on a transport error only. */
  request(method: string, path: string, body?: Buffer | string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = this.send(method, path, body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) });
      req.on("error", reject);
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.end(body);
    });
  }

  /** A JSON answer; anything but 200 is an error naming the request and the answer. */
  async json<T>(method: string, path: string, body?: object): Promise<T> {
    const res = await this.request(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? {} : { "content-type": "application/json" });
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${res.body.toString("utf8").slice(0, 300)}`);
    return JSON.parse(res.body.toString("utf8")) as T;
  }

  /** POST /v1/files with `data` as the file (multipart/form-data, purpose first). */
  async uploadSmall(data: Buffer, filename: string, purpose = "assistants"): Promise<FileObject> {
    const boundary = `bench${randomBytes(8).toString("hex")}`;
    const body = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n` +
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      data,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await this.request("POST", "/v1/files", body, { "content-type": `multipart/form-data; boundary=${boundary}` });
    if (res.status !== 200) throw new Error(`POST /v1/files: ${res.status} ${res.body.toString("utf8").slice(0, 300)}`);
    return JSON.parse(res.body.toString("utf8")) as FileObject;
  }

  retrieve(id: string): Promise<FileObject> {
    return this.json<FileObject>("GET", `/v1/files/${id}`);
  }

  listPage(limit: number, after?: string): Promise<ListPage> {
    return this.json<ListPage>("GET", `/v1/files?limit=${limit}${after ? `&after=${after}` : ""}`);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Part size and parts in flight for the Uploads API path (the service's own S3 part size and concurrency). */
export const UPLOAD_PART_BYTES = 8 * MiB;
export const UPLOAD_PART_CONCURRENCY = 4;

/** Streams one part (payload blocks [first, first + count)) as the multipart field `data`. */
function sendPart(send: ReturnType<typeof keepAliveRequester>["request"], uploadId: string, payload: Payload, first: number, count: number): Promise<string> {
  const bytes = Math.min(payload.bytes - first * BLOCK, count * BLOCK);
  const boundary = `bench${randomBytes(8).toString("hex")}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="part"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const req = send("POST", `/v1/uploads/${uploadId}/parts`, {
    "content-type": `multipart/form-data; boundary=${boundary}`,
    "content-length": Buffer.byteLength(head) + bytes + Buffer.byteLength(tail),
  });
  return sendBody<{ id: string }>(req, `POST /v1/uploads/${uploadId}/parts`, head, payload.blocks(first, count), tail).then((part) => part.id);
}

/**
 * The Uploads API as a transfer path: create, parts of UPLOAD_PART_BYTES with
 * UPLOAD_PART_CONCURRENCY in flight, complete in order; download and delete as REST.
 */
export function uploadsApiClient(baseUrl: string, ca?: Buffer): BenchClient {
  const rest = restBenchClient(baseUrl, ca);
  const api = new OpenAiRest(baseUrl, UPLOAD_PART_CONCURRENCY + 1, ca);
  const { agent: partAgent, request: sendPartRequest } = keepAliveRequester(baseUrl, UPLOAD_PART_CONCURRENCY, ca);
  const blocksPerPart = UPLOAD_PART_BYTES / BLOCK;
  return {
    name: "REST Uploads API",
    async upload(payload) {
      const upload = await api.json<{ id: string }>("POST", "/v1/uploads", {
        bytes: payload.bytes,
        filename: "bench.bin",
        mime_type: "application/octet-stream",
        purpose: "assistants",
      });
      const parts = Math.max(1, Math.ceil(payload.bytes / UPLOAD_PART_BYTES));
      const partIds: string[] = new Array<string>(parts);
      let next = 0;
      const worker = async () => {
        while (next < parts) {
          const index = next++;
          partIds[index] = await sendPart(sendPartRequest, upload.id, payload, index * blocksPerPart, blocksPerPart);
        }
      };
      await Promise.all(Array.from({ length: Math.min(parts, UPLOAD_PART_CONCURRENCY) }, worker));
      const done = await api.json<{ status: string; file?: { id: string; bytes: number } }>("POST", `/v1/uploads/${upload.id}/complete`, {
        part_ids: partIds,
      });
      if (done.status !== "completed" || !done.file) throw new Error(`upload ${upload.id} completed as ${done.status} without a file`);
      return { id: done.file.id, bytes: done.file.bytes };
    },
    download: (id) => rest.download(id),
    remove: (id) => rest.remove(id),
    close() {
      rest.close();
      api.close();
      partAgent.destroy();
    },
  };
}
