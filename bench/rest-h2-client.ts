/**
 * The service's REST API over HTTP/2 cleartext (target resth2): the same requests as the REST
 * target (POST /v1/files multipart, GET /v1/files/{id}/content, GET /v1/files/{id}, GET
 * /v1/files?limit=...) on one node:http2 session with prior knowledge, to the same port (the
 * server sends connections that open with the HTTP/2 preface to its http2 server). The windows are
 * 16 MiB, as the connect-node gRPC client has them, so the two HTTP/2 paths differ only in protocol.
 */
import http2 from "node:http2";
import type { BenchClient, Transferred } from "./clients.js";
import type { FileObject, ListPage } from "./openai-rest.js";
import { MiB, type Payload } from "./payload.js";
import { fileForm, hashBody, writeBody } from "./rest-client.js";

const WINDOW = 16 * MiB;

export class RestH2 implements BenchClient {
  readonly name = "REST over HTTP/2 (POST /v1/files, GET /content)";
  private readonly session: http2.ClientHttp2Session;

  /** An https:// baseUrl is HTTP/2 over TLS (ALPN h2), trusting `ca` only. */
  constructor(baseUrl: string, ca?: Buffer) {
    this.session = http2.connect(baseUrl, { settings: { initialWindowSize: WINDOW }, ...(ca && { ca }) });
    // Node's connection-level window stays at 64 KiB unless raised explicitly.
    this.session.once("connect", () => this.session.setLocalWindowSize(WINDOW));
    this.session.on("error", () => undefined); // surfaces on the streams
  }

  /** Opens a stream; resolves with its status once the response headers arrive. */
  private open(method: string, path: string, headers: http2.OutgoingHttpHeaders = {}) {
    const stream = this.session.request({ ":method": method, ":path": path, ...headers });
    const status = new Promise<number>((resolve, reject) => {
      stream.once("response", (h) => resolve(Number(h[":status"])));
      stream.once("error", reject);
    });
    status.catch(() => undefined); // a stream error also ends the read of its body, which reports it
    return { stream, status };
  }

  /** One request with no body; the answer is read whole. */
  async request(method: string, path: string): Promise<{ status: number; body: Buffer }> {
    const { stream, status } = this.open(method, path);
    stream.end();
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { status: await status, body: Buffer.concat(chunks) };
  }

  async json<T>(method: string, path: string): Promise<T> {
    const res = await this.request(method, path);
    if (res.status !== 200) throw new Error(`HTTP/2 ${method} ${path}: ${res.status} ${res.body.toString("utf8").slice(0, 300)}`);
    return JSON.parse(res.body.toString("utf8")) as T;
  }

  retrieve(id: string): Promise<FileObject> {
    return this.json<FileObject>("GET", `/v1/files/${id}`);
  }

  listPage(limit: number, after?: string): Promise<ListPage> {
    return this.json<ListPage>("GET", `/v1/files?limit=${limit}${after ? `&after=${after}` : ""}`);
  }

  async upload(payload: Payload): Promise<{ id: string } & Transferred> {
    const form = fileForm(payload.bytes);
    const { stream, status } = this.open("POST", "/v1/files", form.headers);
    // A failed write fails the stream, and so the read of the answer below.
    writeBody(stream, form.head, payload.blocks(), form.tail).catch(() => undefined);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if ((await status) !== 200) throw new Error(`HTTP/2 POST /v1/files: ${await status} ${body.slice(0, 300)}`);
    const file = JSON.parse(body) as FileObject;
    return { id: file.id, bytes: file.bytes };
  }

  async download(id: string): Promise<Transferred> {
    const { stream, status } = this.open("GET", `/v1/files/${id}/content`);
    stream.end();
    if ((await status) !== 200) {
      stream.resume();
      throw new Error(`HTTP/2 GET content: ${await status}`);
    }
    return hashBody(stream);
  }

  async remove(id: string): Promise<void> {
    const res = await this.request("DELETE", `/v1/files/${id}`);
    if (res.status !== 200) throw new Error(`HTTP/2 DELETE: ${res.status}`);
  }

  close(): void {
    this.session.close();
  }
}
