/**
 * An HTTP proxy in front of a real S3 endpoint (moto) that injects the faults moto cannot produce:
 * throttling answers (503 SlowDown) and responses that never come. Everything else is forwarded
 * untouched, Host header included, so SigV4 signatures stay valid. Path-style requests only.
 *
 *   const proxy = await startS3FaultProxy(testS3Endpoint());
 *   proxy.inject({ operation: "PutObject", fault: "slow-down", times: 2 });
 *   ... point the server's endpoint_url at proxy.endpoint ...
 *   proxy.requests("PutObject")  // [{ status: 503, fault: "slow-down" }, ..., { status: 200 }]
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type S3Operation =
  | "PutObject"
  | "CopyObject"
  | "UploadPart"
  | "CreateMultipartUpload"
  | "CompleteMultipartUpload"
  | "AbortMultipartUpload"
  | "ListParts"
  | "ListMultipartUploads"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "DeleteObjects"
  | "HeadBucket"
  | "CreateBucket"
  | "ListObjects"
  | "Other";

/**
 * - `slow-down`: answer 503 with S3's SlowDown error body, without forwarding (S3 does nothing).
 * - `stall`: read the request, forward nothing, never answer (until the client gives up).
 * - `stall-after-upstream`: forward the request, so S3 acts on it, and withhold the answer.
 * - `not-implemented`: answer 501 with S3's NotImplemented error body, as stores without the
 *   operation do (ListMultipartUploads, UploadPartCopy... on some S3-compatible servers).
 */
export type Fault = "slow-down" | "stall" | "stall-after-upstream" | "not-implemented";

export interface FaultRule {
  operation: S3Operation;
  fault: Fault;
  /** How many matching requests get the fault; later ones pass through. Default 1. */
  times?: number;
  /** Only requests whose object key matches (for example /\/uploads\//). */
  key?: RegExp;
  /** Only requests that copy (true: UploadPartCopy, CopyObject) or only those that do not (false). */
  copies?: boolean;
}

export interface ProxiedRequest {
  operation: S3Operation;
  method: string;
  /** The object key (URL-decoded), or "" for bucket-level requests. */
  key: string;
  /** The status the client got; undefined while stalled, or when the client gave up first. */
  status?: number;
  fault?: Fault;
  /** The x-amz-content-sha256 header: the signed payload hash, or UNSIGNED-PAYLOAD. */
  contentSha256?: string;
  /** Whether it names an x-amz-copy-source (a CopyObject, or an UploadPart that copies). */
  copies?: boolean;
}

export interface S3FaultProxy {
  /** The URL to use as endpoint_url. */
  endpoint: string;
  /** Adds a fault rule; rules are tried in the order they were added. */
  inject(rule: FaultRule): void;
  /** Rules whose faults have not all been served yet. */
  pendingFaults(): number;
  /** Every request seen so far (optionally of one operation), in arrival order. */
  requests(operation?: S3Operation): ProxiedRequest[];
  /** Forgets the rules and the request log. */
  reset(): void;
  close(): Promise<void>;
}

interface ActiveRule extends FaultRule {
  left: number;
}

/** Names the S3 operation of a path-style request from its method, path and query. */
export function classify(method: string, url: string): { operation: S3Operation; key: string } {
  const parsed = new URL(url, "http://proxy");
  const q = parsed.searchParams;
  const [, , ...rest] = parsed.pathname.split("/"); // "", bucket, key...
  const key = decodeURIComponent(rest.join("/"));
  if (key === "") {
    if (method === "HEAD") return { operation: "HeadBucket", key };
    if (method === "PUT" && q.size === 0) return { operation: "CreateBucket", key };
    if (method === "POST" && q.has("delete")) return { operation: "DeleteObjects", key };
    if (method === "GET" && q.has("uploads")) return { operation: "ListMultipartUploads", key };
    if (method === "GET" && (q.has("list-type") || q.size === 0 || q.has("prefix"))) return { operation: "ListObjects", key };
    return { operation: "Other", key };
  }
  if (method === "POST" && q.has("uploads")) return { operation: "CreateMultipartUpload", key };
  if (method === "POST" && q.has("uploadId")) return { operation: "CompleteMultipartUpload", key };
  if (method === "PUT" && q.has("partNumber") && q.has("uploadId")) return { operation: "UploadPart", key };
  if (method === "DELETE" && q.has("uploadId")) return { operation: "AbortMultipartUpload", key };
  if (method === "GET" && q.has("uploadId")) return { operation: "ListParts", key };
  if (q.size > 0 && !q.has("x-id")) return { operation: "Other", key }; // ?tagging, ?acl...
  if (method === "PUT") return { operation: "PutObject", key };
  if (method === "GET") return { operation: "GetObject", key };
  if (method === "HEAD") return { operation: "HeadObject", key };
  if (method === "DELETE") return { operation: "DeleteObject", key };
  return { operation: "Other", key };
}

function errorBody(code: string, message: string, key: string): string {
  const id = randomBytes(8).toString("hex").toUpperCase();
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message><Resource>/${key}</Resource>` +
    `<RequestId>${id}</RequestId><HostId>fault-proxy</HostId></Error>`
  );
}

const FAULT_ANSWERS = {
  "slow-down": { status: 503, code: "SlowDown", message: "Please reduce your request rate." },
  "not-implemented": { status: 501, code: "NotImplemented", message: "A header you provided implies functionality that is not implemented." },
} as const;

/** Starts the proxy on a free loopback port, forwarding to `upstream` (http://host:port). */
export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  if (target.protocol !== "http:") throw new Error(`s3-fault-proxy: only http upstreams are supported, got ${upstream}`);
  let rules: ActiveRule[] = [];
  let log: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const agent = new http.Agent({ keepAlive: true });

  const takeFault = (operation: S3Operation, key: string, copies: boolean): Fault | undefined => {
    const rule = rules.find(
      (r) => r.left > 0 && r.operation === operation && (r.key === undefined || r.key.test(key)) && (r.copies === undefined || r.copies === copies),
    );
    if (!rule) return undefined;
    rule.left--;
    return rule.fault;
  };

  const forward = (req: http.IncomingMessage, onResponse: (upstreamRes: http.IncomingMessage) => void, onError: (err: Error) => void) => {
    const headers = { ...req.headers };
    // This server already answered any "Expect: 100-continue"; the body is streamed on as it comes.
    delete headers.expect;
    const out = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      onResponse,
    );
    out.on("error", onError);
    req.pipe(out);
  };

  const server = http.createServer((req, res) => {
    const { operation, key } = classify(req.method ?? "GET", req.url ?? "/");
    const contentSha256 = req.headers["x-amz-content-sha256"];
    const entry: ProxiedRequest = {
      operation,
      method: req.method ?? "GET",
      key,
      ...(typeof contentSha256 === "string" && { contentSha256 }),
      ...(req.headers["x-amz-copy-source"] !== undefined && { copies: true }),
    };
    log.push(entry);
    const fault = takeFault(operation, key, req.headers["x-amz-copy-source"] !== undefined);
    if (fault !== undefined) entry.fault = fault;

    if (fault === "slow-down" || fault === "not-implemented") {
      const answer = FAULT_ANSWERS[fault];
      req.resume();
      req.once("end", () => {
        const body = errorBody(answer.code, answer.message, key);
        entry.status = answer.status;
        res.writeHead(answer.status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), "x-amz-request-id": "fault-proxy" });
        res.end(req.method === "HEAD" ? undefined : body);
      });
      return;
    }
    if (fault === "stall") {
      req.resume(); // read the body so the client is left waiting for the answer, not for a write
      return;
    }
    forward(
      req,
      (upstreamRes) => {
        if (fault === "stall-after-upstream") {
          upstreamRes.resume(); // S3 has acted; the client never hears about it
          return;
        }
        entry.status = upstreamRes.statusCode;
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.rawHeaders);
        upstreamRes.pipe(res);
      },
      (err) => {
        if (fault === "stall-after-upstream") return;
        entry.status = 502;
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`s3-fault-proxy: upstream error ${err.message}`);
      },
    );
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // No server-side timeouts: a stalled answer lasts until the client gives up.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(rule) {
      rules.push({ ...rule, left: rule.times ?? 1 });
    },
    pendingFaults: () => rules.filter((r) => r.left > 0).length,
    requests: (operation) => log.filter((r) => operation === undefined || r.operation === operation).map((r) => ({ ...r })),
    reset() {
      rules = [];
      log = [];
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}
