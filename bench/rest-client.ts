/**
 * The service's OpenAI REST API as a benchmark path: POST /v1/files with a multipart body generated
 * block by block (purpose after the file, as a streaming client may send it), and GET .../content
 * hashed as it arrives. Plain node:http with a keep-alive agent, so the figures are the server's.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { Writable } from "node:stream";
import type { BenchClient, Transferred } from "./clients.js";
import { StreamDigest, type Payload } from "./payload.js";

/**
 * node:http, or node:https for an https:// baseUrl (trusting `ca` only), with a keep-alive agent of
 * at most `maxSockets` connections: `request` sends on it.
 */
export function keepAliveRequester(baseUrl: string, maxSockets: number, ca?: Buffer) {
  const secure = new URL(baseUrl).protocol === "https:";
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets, ...(ca && { ca }) }) : new http.Agent({ keepAlive: true, maxSockets });
  const request = (method: string, path: string, headers: http.OutgoingHttpHeaders = {}) =>
    (secure ? https : http).request(new URL(path, baseUrl), { method, agent, headers });
  return { agent, request };
}

export function restBenchClient(baseUrl: string, ca?: Buffer): BenchClient {
  const { agent, request } = keepAliveRequester(baseUrl, 4, ca);

  return {
    name: "REST (POST /v1/files, GET /content)",
    upload(payload: Payload) {
      const form = fileForm(payload.bytes);
      const req = request("POST", "/v1/files", form.headers);
      return sendBody<{ id: string; bytes: number }>(req, "POST /v1/files", form.head, payload.blocks(), form.tail).then((file) => ({ id: file.id, bytes: file.bytes }));
    },
    download: (id: string) => hashedGet(request("GET", `/v1/files/${id}/content`), "GET content"),
    remove: (id: string) => expectOk(request("DELETE", `/v1/files/${id}`), "DELETE"),
    close: () => agent.destroy(),
  };
}

/**
 * The multipart body of a file upload as the bench sends it: the file first, then its purpose (as
 * a streaming client may send it). The payload's `bytes` go between `head` and `tail`.
 */
export function fileForm(bytes: number): { head: string; tail: string; headers: { "content-type": string; "content-length": number } } {
  const boundary = `bench${randomBytes(8).toString("hex")}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const tail = `\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`;
  return {
    head,
    tail,
    headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": Buffer.byteLength(head) + bytes + Buffer.byteLength(tail) },
  };
}

/** Sends a bodiless request; resolves with its body hashed as it arrives; anything but 200 is an error naming `label`. */
export function hashedGet(req: http.ClientRequest, label: string): Promise<Transferred> {
  return new Promise<Transferred>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${label}: ${res.statusCode}`));
      }
      hashBody(res).then(resolve, reject);
    });
    req.end();
  });
}

/** A response body hashed and counted as it arrives (nothing is buffered). */
export async function hashBody(body: AsyncIterable<Buffer>): Promise<Transferred> {
  const digest = new StreamDigest();
  let chunks = 0;
  for await (const chunk of body) {
    digest.update(chunk);
    chunks++;
  }
  return { bytes: digest.bytes, sha256: digest.digest(), chunks };
}

/** Sends a bodiless request and discards the answer; anything but 200 is an error naming `label`. */
export function expectOk(req: http.ClientRequest, label: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${label}: ${res.statusCode}`))));
    });
    req.end();
  });
}

/** Writes `head`, the payload's blocks (waiting for each to drain) and `tail`, and ends the body. */
export async function writeBody(body: Writable, head: string, blocks: Iterable<Buffer>, tail: string): Promise<void> {
  if (head) body.write(head);
  for (const block of blocks) {
    if (!body.write(block)) await new Promise((r) => body.once("drain", r));
  }
  body.end(tail || undefined);
}

/**
 * Sends `head`, the payload's blocks (waiting for the socket to drain) and `tail` as the body (a
 * multipart form, or with both empty the bare payload), and resolves with its JSON answer;
 * anything but 200 is an error naming `label`.
 */
export function sendBody<T>(req: http.ClientRequest, label: string, head: string, blocks: Iterable<Buffer>, tail: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`${label}: ${res.statusCode} ${body.slice(0, 300)}`));
        resolve(JSON.parse(body) as T);
      });
    });
    writeBody(req, head, blocks, tail).catch(reject);
  });
}
