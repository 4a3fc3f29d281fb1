/**
 * The REST API's edges over raw HTTP, against the real server on moto S3 with SQLite metadata:
 * every malformed or refused form answers with OpenAI's error shape and leaves no object behind;
 * the content endpoint's headers, ranges and conditionals; odd paths and methods; the size limit;
 * and a client that walks away mid-upload.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rawRequest } from "../support/raw-http.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

const BOUNDARY = "----rest-edges-7d1f0c";

interface FileJson {
  id: string;
  object: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: string;
  status: string;
}

type Part =
  | { name: string; value: string }
  | {
      name: string;
      /** A quoted filename, written as is. */
      filename?: string;
      /** The whole Content-Disposition value, for filenames a quoted string cannot carry. */
      disposition?: string;
      contentType?: string;
      data: Buffer | string;
    };

/** A multipart/form-data body written byte by byte, so each test controls exactly what is sent. */
function form(parts: Part[], { close = true }: { close?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${BOUNDARY}\r\n`));
    if ("value" in part) {
      chunks.push(Buffer.from(`Content-Disposition: form-data; name="${part.name}"\r\n\r\n${part.value}\r\n`));
      continue;
    }
    const disposition = part.disposition ?? `form-data; name="${part.name}"; filename="${part.filename ?? "data.bin"}"`;
    chunks.push(Buffer.from(`Content-Disposition: ${disposition}\r\n`));
    chunks.push(Buffer.from(`Content-Type: ${part.contentType ?? "application/octet-stream"}\r\n\r\n`));
    chunks.push(Buffer.from(part.data));
    chunks.push(Buffer.from("\r\n"));
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

/** POSTs `body` to /v1/files (fetch sets an honest Content-Length for a Buffer); null sends no Content-Type. */
function postFiles(baseUrl: string, body: Buffer | string, contentType: string | null = MULTIPART): Promise<Response> {
  return fetch(`${baseUrl}/v1/files`, {
    method: "POST",
    headers: contentType === null ? {} : { "content-type": contentType },
    body,
  });
}

/** Asserts OpenAI's error shape with all four keys, JSON content type, and no-retry on 4xx. */
async function expectError(res: Response, status: number, param: string | null | undefined = undefined): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/json");
  const body = JSON.parse(text) as { error: { message: string; type: string; param: string | null; code: string | null } };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.type).toBe(status >= 500 ? "server_error" : "invalid_request_error");
  if (param !== undefined) expect(body.error.param).toBe(param);
  if (status >= 400 && status < 500) expect(res.headers.get("x-should-retry")).toBe("false");
  return body.error;
}


/** Every object in the bucket belongs to a file the server lists (key_prefix is empty: key = file id). */
async function expectOnlyFileObjects(baseUrl: string, bucket: string): Promise<void> {
  const res = await fetch(`${baseUrl}/v1/files`);
  expect(res.status).toBe(200);
  const ids = ((await res.json()) as { data: FileJson[] }).data.map((f) => f.id).sort();
  expect((await listAllKeys(bucket)).sort()).toEqual(ids);
  expect(await listMultipartUploads(bucket)).toEqual([]);
}

async function listPurpose(baseUrl: string, purpose: string): Promise<FileJson[]> {
  const res = await fetch(`${baseUrl}/v1/files?purpose=${purpose}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: FileJson[] }).data;
}

describe("REST edges", () => {
  let server: ServerProcess;
  let bucket: string;

  beforeAll(async () => {
    bucket = await createTestBucket("rest-edges");
    const dir = await tempDir("rest-edges");
    server = await startServer({
      config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }, { part_size_bytes: 5 * MiB }),
    });
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  describe("POST /v1/files form handling", () => {
    it("a non-multipart body is 415", async () => {
      const res = await postFiles(server.baseUrl, JSON.stringify({ purpose: "batch" }), "application/json");
      await expectError(res, 415);
      await expectError(await postFiles(server.baseUrl, "purpose=batch", "application/x-www-form-urlencoded"), 415);
      // A Buffer body, so fetch adds no Content-Type of its own.
      await expectError(await postFiles(server.baseUrl, Buffer.from("x"), null), 415);
    });

    it("garbage under a multipart content type is 400", async () => {
      const res = await postFiles(server.baseUrl, randomBytes(4096));
      await expectError(res, 400);
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it("a multipart content type without a boundary is 400", async () => {
      const body = form([{ name: "purpose", value: "batch" }, { name: "file", filename: "a.txt", data: "a" }]);
      await expectError(await postFiles(server.baseUrl, body, "multipart/form-data"), 400);
    });

    it("a form that ends mid-file (no closing boundary) is 400 and leaves no object", async () => {
      const body = form([{ name: "purpose", value: "batch" }, { name: "file", filename: "cut.bin", data: randomBytes(3 * MiB) }], { close: false });
      // Cut inside the file's bytes: the declared length matches what is sent, but the form never ends.
      const res = await postFiles(server.baseUrl, body.subarray(0, body.length - MiB));
      await expectError(res, 400);
      await expectOnlyFileObjects(server.baseUrl, bucket);
      expect(await listPurpose(server.baseUrl, "batch")).toEqual([]);
    });

    it("a form without a file part is 400 on param file", async () => {
      await expectError(await postFiles(server.baseUrl, form([{ name: "purpose", value: "batch" }])), 400, "file");
    });

    it("file sent as a text field is 400 on param file", async () => {
      const body = form([{ name: "purpose", value: "batch" }, { name: "file", value: "not a file part" }]);
      await expectError(await postFiles(server.baseUrl, body), 400, "file");
    });

    it.each([
      ["before", [{ name: "purpose", value: "batch" }, { name: "purpose", value: "assistants" }, { name: "file", filename: "d.txt", data: "d" }]],
      ["after", [{ name: "file", filename: "d.txt", data: "d" }, { name: "purpose", value: "batch" }, { name: "purpose", value: "assistants" }]],
      ["around", [{ name: "purpose", value: "batch" }, { name: "file", filename: "d.txt", data: "d" }, { name: "purpose", value: "batch" }]],
    ] as [string, Part[]][])("purpose given twice (%s the file) is 400 on param purpose, leaving nothing", async (_where, parts) => {
      await expectError(await postFiles(server.baseUrl, form(parts)), 400, "purpose");
      await expectOnlyFileObjects(server.baseUrl, bucket);
      // The server is still answering.
      expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    });

    it("two file parts are 400 on param file, leaving nothing", async () => {
      const body = form([
        { name: "purpose", value: "batch" },
        { name: "file", filename: "one.bin", data: randomBytes(MiB) },
        { name: "file", filename: "two.bin", data: randomBytes(MiB) },
      ]);
      await expectError(await postFiles(server.baseUrl, body), 400, "file");
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it("purpose after the file part is accepted", async () => {
      const data = randomBytes(256 * 1024);
      const res = await postFiles(server.baseUrl, form([{ name: "file", filename: "late.bin", data }, { name: "purpose", value: "fine-tune" }]));
      expect(res.status).toBe(200);
      const file = (await res.json()) as FileJson;
      expect(file).toMatchObject({ object: "file", bytes: data.length, filename: "late.bin", purpose: "fine-tune", status: "processed" });
      const content = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`);
      expect(sha256(new Uint8Array(await content.arrayBuffer()))).toBe(sha256(data));
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it("an invalid purpose before the file part is 400 on param purpose, and the server keeps serving", async () => {
      for (const purpose of ["nonsense", "batch_output"]) {
        const body = form([{ name: "purpose", value: purpose }, { name: "file", filename: "early.bin", data: randomBytes(64 * 1024) }]);
        await expectError(await postFiles(server.baseUrl, body), 400, "purpose");
      }
      await expectOnlyFileObjects(server.baseUrl, bucket);
      expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
    });

    it("an invalid purpose after the file part is 400 on param purpose, leaving nothing", async () => {
      const body = form([{ name: "file", filename: "late.bin", data: randomBytes(2 * MiB) }, { name: "purpose", value: "batch_output" }]);
      await expectError(await postFiles(server.baseUrl, body), 400, "purpose");
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it.each([
      ["257 ASCII bytes", "a".repeat(252) + ".txt"],
      ["256 bytes of two-byte characters", "é".repeat(128)],
    ])("a filename over 255 bytes (%s) is 400 on param filename", async (_name, filename) => {
      const body = form([{ name: "purpose", value: "batch" }, { name: "file", filename, data: "x" }]);
      await expectError(await postFiles(server.baseUrl, body), 400, "filename");
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it("a filename of exactly 255 bytes is accepted", async () => {
      const filename = "b".repeat(251) + ".txt";
      const res = await postFiles(server.baseUrl, form([{ name: "purpose", value: "assistants" }, { name: "file", filename, data: "x" }]));
      expect(res.status).toBe(200);
      expect(((await res.json()) as FileJson).filename).toBe(filename);
    });

    it.each([
      ["CR LF via filename*", `form-data; name="file"; filename*=utf-8''a%0D%0Ab.txt`],
      ["LF via filename*", `form-data; name="file"; filename*=utf-8''a%0Ab.txt`],
      ["NUL via filename*", `form-data; name="file"; filename*=utf-8''a%00b.txt`],
      ["a tab in a quoted filename", `form-data; name="file"; filename="a\tb.txt"`],
    ])("a filename with a control character (%s) is 400 on param filename", async (_name, disposition) => {
      const body = form([{ name: "purpose", value: "batch" }, { name: "file", disposition, data: "x" }]);
      await expectError(await postFiles(server.baseUrl, body), 400, "filename");
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });

    it("a filename with quotes, backslashes and a path never breaks Content-Disposition", async () => {
      // busboy keeps only the last path segment (after '/' or '\\'); the quote must not end the quoted fallback.
      const body = form([
        { name: "purpose", value: "batch" },
        { name: "file", disposition: `form-data; name="file"; filename*=utf-8''dir%2Fq%5Cuo%22te%3B%20x%3Dy.txt`, data: "x" },
      ]);
      const res = await postFiles(server.baseUrl, body);
      expect(res.status).toBe(200);
      const file = (await res.json()) as FileJson;
      expect(file.filename).toContain('"');
      const content = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`);
      expect(content.status).toBe(200);
      const disposition = content.headers.get("content-disposition")!;
      // One attachment, a quoted ASCII fallback with nothing that escapes it, and an RFC 8187 value that decodes back.
      expect(disposition).toMatch(/^attachment; filename="[\x20\x21\x23-\x5b\x5d-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9!#$&+.^_`|~%-]+$/);
      expect(decodeExtFilename(disposition)).toBe(file.filename);
      await fetch(`${server.baseUrl}/v1/files/${file.id}`, { method: "DELETE" });
    });

    it.each([
      ["fetch FormData (raw UTF-8 in the quoted filename)", "fetch"],
      ["filename* (RFC 8187)", "ext"],
    ])("a unicode filename round-trips via %s", async (_name, how) => {
      const filename = "résumé 📄.txt";
      let res: Response;
      if (how === "fetch") {
        const fd = new FormData();
        fd.append("purpose", "assistants");
        fd.append("file", new Blob(["unicode"], { type: "text/plain" }), filename);
        res = await fetch(`${server.baseUrl}/v1/files`, { method: "POST", body: fd });
      } else {
        const disposition = `form-data; name="file"; filename*=UTF-8''${encodeURIComponent(filename)}`;
        res = await postFiles(server.baseUrl, form([{ name: "purpose", value: "assistants" }, { name: "file", disposition, contentType: "text/plain", data: "unicode" }]));
      }
      expect(res.status).toBe(200);
      const file = (await res.json()) as FileJson;
      expect(file.filename).toBe(filename);
      const retrieved = (await (await fetch(`${server.baseUrl}/v1/files/${file.id}`)).json()) as FileJson;
      expect(retrieved.filename).toBe(filename);
      const content = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`);
      expect(content.status).toBe(200);
      expect(decodeExtFilename(content.headers.get("content-disposition")!)).toBe(filename);
      expect(await content.text()).toBe("unicode");
    });
  });

  describe("GET/HEAD /v1/files/{id}/content", () => {
    const data = randomBytes(1000);
    let file: FileJson;
    let url: string;

    beforeAll(async () => {
      const res = await postFiles(server.baseUrl, form([{ name: "purpose", value: "assistants" }, { name: "file", filename: "table.csv", contentType: "text/csv", data }]));
      expect(res.status).toBe(200);
      file = (await res.json()) as FileJson;
      url = `${server.baseUrl}/v1/files/${file.id}/content`;
    });

    it("answers with the part's content type, length, a SHA-256 ETag and Accept-Ranges", async () => {
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/csv");
      expect(res.headers.get("content-length")).toBe(String(data.length));
      expect(res.headers.get("etag")).toBe(`"${sha256(data)}"`);
      expect(res.headers.get("accept-ranges")).toBe("bytes");
      expect(res.headers.get("content-disposition")).toBe(`attachment; filename="table.csv"; filename*=UTF-8''table.csv`);
      expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    });

    it.each([
      ["bytes=0-9", 0, 10],
      ["bytes=10-", 10, 990],
      ["bytes=-5", 995, 5],
      ["bytes=990-5000", 990, 10],
    ])("Range %s is 206 with the right Content-Range and bytes", async (range, offset, length) => {
      const res = await fetch(url, { headers: { range } });
      expect(res.status).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${offset}-${offset + length - 1}/${data.length}`);
      expect(res.headers.get("content-length")).toBe(String(length));
      expect(Buffer.from(await res.arrayBuffer()).equals(data.subarray(offset, offset + length))).toBe(true);
    });

    it("an unsatisfiable range is 416 with Content-Range bytes */size", async () => {
      const res = await fetch(url, { headers: { range: "bytes=999999999-" } });
      expect(res.headers.get("content-range")).toBe(`bytes */${data.length}`);
      await expectError(res, 416, "range");
    });

    it("HEAD answers the headers without a body", async () => {
      const res = await rawRequest(server.port, "HEAD", `/v1/files/${file.id}/content`);
      expect(res.status).toBe(200);
      expect(res.headers["content-length"]).toBe(String(data.length));
      expect(res.headers["content-type"]).toBe("text/csv");
      expect(res.headers.etag).toBe(`"${sha256(data)}"`);
      expect(res.body.length).toBe(0);
      const ranged = await rawRequest(server.port, "HEAD", `/v1/files/${file.id}/content`, { headers: { range: "bytes=0-9" } });
      expect(ranged.status).toBe(206);
      expect(ranged.headers["content-range"]).toBe(`bytes 0-9/${data.length}`);
      expect(ranged.body.length).toBe(0);
    });

    it("If-None-Match with the ETag is 304", async () => {
      const res = await fetch(url, { headers: { "if-none-match": `"${sha256(data)}"` } });
      expect(res.status).toBe(304);
      expect(res.headers.get("etag")).toBe(`"${sha256(data)}"`);
      expect((await res.arrayBuffer()).byteLength).toBe(0);
      const other = await fetch(url, { headers: { "if-none-match": `"${"0".repeat(64)}"` } });
      expect(other.status).toBe(200);
      await other.arrayBuffer();
    });

    it.each([
      "/v1/files/..%2F..%2Fetc%2Fpasswd/content",
      "/v1/files/file-../content",
      "/v1/files/..%2F..%2Fetc%2Fpasswd",
      "/v1/files/%2E%2E/content",
      "/v1/files/file-%00/content",
      "/v1/files/%E0%A4%A/content",
      "/v1/files/../../etc/passwd",
    ])("a path-shaped id %s is 404 JSON", async (path) => {
      const res = await rawRequest(server.port, "GET", path);
      const response = new Response(res.body, {
        status: res.status,
        headers: Object.entries(res.headers).flatMap(([k, v]) => (typeof v === "string" ? [[k, v] as [string, string]] : [])),
      });
      await expectError(response, 404);
    });

    it("an unknown route is 404 JSON", async () => {
      await expectError(await fetch(`${server.baseUrl}/v1/nothing-here`), 404);
      await expectError(await fetch(`${server.baseUrl}/v1/files/${file.id}/content/extra`), 404);
    });

    it("a wrong method is 405 with Allow", async () => {
      const put = await fetch(`${server.baseUrl}/v1/files`, { method: "PUT", body: "x" });
      expect(put.headers.get("allow")).toBe("GET, POST");
      await expectError(put, 405);
      const del = await fetch(url, { method: "DELETE" });
      expect(del.headers.get("allow")).toBe("GET, HEAD");
      await expectError(del, 405);
    });
  });

  describe("a client that disconnects mid-upload", () => {
    it("leaves no object and no file row, and the server keeps working", async () => {
      const purpose = "vision"; // used by no other test in this file
      const head = Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n` +
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="gone.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      );
      const declared = head.length + 10 * MiB + `\r\n--${BOUNDARY}--\r\n`.length;
      const req = http.request({
        host: "127.0.0.1",
        port: server.port,
        method: "POST",
        path: "/v1/files",
        headers: { "content-type": MULTIPART, "content-length": String(declared) },
      });
      const settled = new Promise<void>((resolve) => {
        req.on("error", () => resolve());
        req.on("close", () => resolve());
      });
      req.write(head);
      await new Promise<void>((resolve, reject) => req.write(randomBytes(2 * MiB), (err) => (err ? reject(err) : resolve())));
      // Let the server start storing what it has before the connection goes.
      await new Promise((r) => setTimeout(r, 300));
      req.destroy();
      await settled;

      await eventually(async () => {
        expect(await listPurpose(server.baseUrl, purpose)).toEqual([]);
        await expectOnlyFileObjects(server.baseUrl, bucket);
      });

      const res = await postFiles(server.baseUrl, form([{ name: "purpose", value: purpose }, { name: "file", filename: "after.txt", data: "still here" }]));
      expect(res.status).toBe(200);
      const file = (await res.json()) as FileJson;
      expect((await listPurpose(server.baseUrl, purpose)).map((f) => f.id)).toEqual([file.id]);
      await expectOnlyFileObjects(server.baseUrl, bucket);
    });
  });
});

describe("max_file_bytes over REST", () => {
  const LIMIT = MiB;
  let server: ServerProcess;
  let bucket: string;

  beforeAll(async () => {
    bucket = await createTestBucket("rest-edges-limit");
    const dir = await tempDir("rest-edges-limit");
    server = await startServer({
      config: {
        ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }, { part_size_bytes: 5 * MiB }),
        server: { limits: { max_file_bytes: LIMIT } },
      },
    });
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("a 3 MiB file is 413 on param file, leaving nothing; a normal upload then works", async () => {
    const body = form([{ name: "purpose", value: "batch" }, { name: "file", filename: "big.bin", data: randomBytes(3 * MiB) }]);
    const error = await expectError(await postFiles(server.baseUrl, body), 413, "file");
    expect(error.code).toBe("file_too_large");
    await expectOnlyFileObjects(server.baseUrl, bucket);
    expect(await listAllKeys(bucket)).toEqual([]);

    const data = randomBytes(LIMIT); // exactly at the limit
    const res = await postFiles(server.baseUrl, form([{ name: "purpose", value: "batch" }, { name: "file", filename: "ok.bin", data }]));
    expect(res.status).toBe(200);
    const file = (await res.json()) as FileJson;
    expect(file.bytes).toBe(LIMIT);
    expect(await listAllKeys(bucket)).toEqual([file.id]);
  });

  it("the limit holds when purpose comes after the file too", async () => {
    const body = form([{ name: "file", filename: "big.bin", data: randomBytes(3 * MiB) }, { name: "purpose", value: "batch" }]);
    await expectError(await postFiles(server.baseUrl, body), 413, "file");
    await expectOnlyFileObjects(server.baseUrl, bucket);
  });
});

/** The filename from a Content-Disposition's RFC 8187 `filename*=UTF-8''…` parameter. */
function decodeExtFilename(disposition: string): string {
  const match = /filename\*=UTF-8''([^;\s]+)/i.exec(disposition);
  expect(match, disposition).not.toBeNull();
  return decodeURIComponent(match![1]!);
}
