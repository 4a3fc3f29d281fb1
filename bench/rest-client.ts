/**
 * The service's OpenAI REST API as a benchmark path: POST /v1/files with a multipart body generated
 * block by block (purpose after the file, as a streaming client may send it), and GET .../content
 * hashed as it arrives. Plain node:http with a keep-alive agent, so the figures are the server's.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { BenchClient, Transferred } from "./clients.js";
import { StreamDigest, type Payload } from "./payload.js";

export function restBenchClient(baseUrl: string): BenchClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const request = (method: string, path: string, headers: http.OutgoingHttpHeaders = {}) =>
    http.request(new URL(path, baseUrl), { method, agent, headers });

  return {
    name: "REST (POST /v1/files, GET /content)",
    upload(payload: Payload) {
      const boundary = `bench${randomBytes(8).toString("hex")}`;
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
      const tail = `\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}--\r\n`;
      const req = request("POST", "/v1/files", {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": Buffer.byteLength(head) + payload.bytes + Buffer.byteLength(tail),
      });
      return sendForm<{ id: string; bytes: number }>(req, "POST /v1/files", head, payload.blocks(), tail).then((file) => ({ id: file.id, bytes: file.bytes }));
    },
    download(id: string) {
      return new Promise<Transferred>((resolve, reject) => {
        const req = request("GET", `/v1/files/${id}/content`);
        req.on("error", reject);
        req.on("response", (res) => {
          if (res.statusCode !== 200) return reject(new Error(`GET content: ${res.statusCode}`));
          const digest = new StreamDigest();
          let chunks = 0;
          res.on("data", (chunk: Buffer) => {
            digest.update(chunk);
            chunks++;
          });
          res.on("end", () => resolve({ bytes: digest.bytes, sha256: digest.digest(), chunks }));
          res.on("error", reject);
        });
        req.end();
      });
    },
    remove(id: string) {
      return new Promise<void>((resolve, reject) => {
        const req = request("DELETE", `/v1/files/${id}`);
        req.on("error", reject);
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`DELETE: ${res.statusCode}`))));
        });
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}

/**
 * Sends a multipart form as `head`, the payload's blocks (waiting for the socket to drain) and
 * `tail`, and resolves with its JSON answer; anything but 200 is an error naming `label`.
 */
export function sendForm<T>(req: http.ClientRequest, label: string, head: string, blocks: Iterable<Buffer>, tail: string): Promise<T> {
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
    (async () => {
      req.write(head);
      for (const block of blocks) {
        if (!req.write(block)) await new Promise((r) => req.once("drain", r));
      }
      req.end(tail);
    })().catch(reject);
  });
}
