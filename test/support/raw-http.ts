import http from "node:http";

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RawRequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Turns a transport error into the one to report (e.g. with the server's last output). */
  explain?: (err: Error) => Error;
}

/**
 * One request on its own connection to 127.0.0.1:`port`, with the path sent verbatim (fetch would
 * normalise dot segments), answered in full. A body is framed with its length: Node sends an
 * OPTIONS or DELETE body unframed otherwise. A server that answers early may close while the body
 * is still going out; its answer is what counts.
 */
export function rawRequest(port: number, method: string, path: string, options: RawRequestOptions = {}): Promise<RawAnswer> {
  const { body, explain } = options;
  let headers = options.headers ?? {};
  if (body !== undefined) headers = { "content-length": String(Buffer.byteLength(body)), ...headers };
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", (err) => {
      if (!answered) reject(explain ? explain(err) : err);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to ${method} ${path.slice(0, 200)} within 20 s`)));
    req.end(body);
  });
}
