/**
 * Property-based pass over the REST request parsing, against a real server on moto S3 and SQLite:
 * query strings, paths, JSON bodies, and the grammar of multipart forms (boundaries, header
 * parameters, dispositions, line endings) on both form endpoints. rest-form-fuzz.test.ts already
 * shuffles, truncates and corrupts whole form parts; this file varies what that one keeps fixed.
 *
 * Every answer is a success or a 4xx in OpenAI's error shape; where the outcome is decidable from the
 * input (which query parameter or JSON field was spoiled, which bytes were sent as the file) it is
 * checked exactly. After every case the server is up and every object in the bucket belongs to a
 * listed file or to a part the server accepted. Replay a failure with FUZZ_SEED=<seed>.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, listAllKeys, listMultipartUploads, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rawRequest, type RawAnswer } from "../support/raw-http.js";
import { sha256 } from "../support/test-helpers.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20260105);
const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const MAX_FILE = 256 * 1024;
const MAX_PART = 64 * 1024;
const MAX_UPLOAD = 1024 * 1024;

const PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"];
const ALL_PURPOSES = [...PURPOSES, "assistants_output", "batch_output", "fine-tune-results"];

let server: ServerProcess;
let bucket: string;
let refs: { id: string; purpose: string; data: Buffer }[] = [];
/** A long-lived pending upload that the parts property sends to; its accepted parts are counted. */
let partsUpload: string;
let partsAccepted = 0;

// ---------------------------------------------------------------------------------------------------
// Raw HTTP

type Answer = RawAnswer;

const send = (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> =>
  rawRequest(server.port, method, path, {
    headers,
    body,
    explain: (err) => new Error(`${err.message}; server exit: ${server.child.exitCode ?? server.child.signalCode}\n${server.output.slice(-10).join("\n")}`),
  });

interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** A 2xx, or a 4xx in OpenAI's error shape (HEAD answers carry no body); never a 5xx. Returns the error, if any. */
function expectAnswer(method: string, answer: Answer, context: string): ErrorBody | undefined {
  const text = answer.body.toString("utf8");
  const shown = `${answer.status} ${text.slice(0, 300)}\n${context}`;
  expect(answer.status, shown).toBeGreaterThanOrEqual(200);
  expect(answer.status, shown).toBeLessThan(500);
  if (answer.status < 300) return undefined;
  expect(answer.status, shown).toBeGreaterThanOrEqual(400);
  expect(answer.headers["x-should-retry"], shown).toBe("false");
  if (method === "HEAD") return undefined;
  expect(answer.headers["content-type"], shown).toBe("application/json");
  const { error } = JSON.parse(text) as { error: ErrorBody };
  expect(Object.keys(error).sort(), shown).toEqual(["code", "message", "param", "type"]);
  expect(error.type, shown).toBe("invalid_request_error");
  expect(typeof error.message === "string" && error.message.length > 0, shown).toBe(true);
  expect(error.param === null || typeof error.param === "string", shown).toBe(true);
  return error;
}

async function listedIds(): Promise<{ id: string; purpose: string }[]> {
  const answer = await send("GET", "/v1/files?limit=10000");
  expect(answer.status).toBe(200);
  return (JSON.parse(answer.body.toString()) as { data: { id: string; purpose: string }[] }).data;
}

/** The server is up, the reference files are intact, and every key belongs to a listed file or an accepted part. */
async function expectAccountedFor(context: string): Promise<void> {
  expect(server.child.exitCode, context).toBeNull();
  const ids = (await listedIds()).map((f) => f.id);
  for (const ref of refs) {
    expect(ids, context).toContain(ref.id);
    expect(sha256((await send("GET", `/v1/files/${ref.id}/content`)).body), context).toBe(sha256(ref.data));
  }
  const keys = await listAllKeys(bucket);
  expect(keys.filter((k) => !k.startsWith("uploads/")).sort(), context).toEqual(ids.sort());
  const partKeys = keys.filter((k) => k.startsWith("uploads/"));
  for (const key of partKeys) expect(key, context).toMatch(new RegExp(`^uploads/${partsUpload}/part_[0-9a-f]{32}$`));
  expect(partKeys.length, context).toBe(partsAccepted);
  expect(await listMultipartUploads(bucket), context).toEqual([]);
}

/** Runs a property with the fixed seed; a failure names the seed to replay it with. */
async function check<T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>): Promise<void> {
  console.log(`fast-check seed ${SEED}, ${RUNS} runs (FUZZ_SEED / FUZZ_RUNS to change)`);
  try {
    await fc.assert(fc.asyncProperty(arbitrary, predicate), { seed: SEED, numRuns: RUNS });
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    throw new Error(`replay with FUZZ_SEED=${SEED}\n${(err as Error).message}${cause ? `\n--- cause ---\n${cause.message}` : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Shared generators

/** Characters that may appear raw in a request target without Node refusing to send it. */
const RAW_SAFE = /^[\x21-\x7e]$/;
function rawEncode(text: string): string {
  return [...text.toWellFormed()].map((c) => (RAW_SAFE.test(c) ? c : encodeURIComponent(c))).join("");
}

const junkText = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.constantFrom("", " ", "%", "%zz", "%E0%A4%A", "&", "=", "#", "+", "..", "../x", "\u0000", "null", "undefined", "[]", "{}"),
);

const numberText = fc.oneof(
  fc.integer({ min: -20_000, max: 20_000 }).map(String),
  fc.constantFrom("0", "1", "10000", "10001", "-1", "1.5", "1e3", "+5", " 5", "007", "0x10", "9".repeat(20), "Infinity", "NaN"),
);

const idText = fc.oneof(
  fc.stringMatching(/^file-[0-9a-f]{32}$/),
  fc.stringMatching(/^upload_[0-9a-f]{32}$/),
  fc.constantFrom("file-", "file-../../etc", "FILE-" + "A".repeat(32), `file-${"a".repeat(2000)}`),
);

// ---------------------------------------------------------------------------------------------------

beforeAll(async () => {
  bucket = await createTestBucket("rest-fuzz");
  const dir = await tempDir("rest-fuzz");
  server = await startServer({
    config: {
      ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }),
      server: { limits: { max_file_bytes: MAX_FILE, max_part_bytes: MAX_PART, max_upload_bytes: MAX_UPLOAD } },
    },
  });
  for (const [purpose, data] of [
    ["batch", randomBytes(3000)],
    ["assistants", randomBytes(10)],
    ["user_data", Buffer.from("r")],
  ] as const) {
    const answer = await postForm("/v1/files", [
      { name: "purpose", value: purpose },
      { name: "file", filename: "ref.bin", data },
    ]);
    expect(answer.status, answer.body.toString()).toBe(200);
    refs.push({ id: (JSON.parse(answer.body.toString()) as { id: string }).id, purpose, data });
  }
  partsUpload = await createUpload(MAX_UPLOAD);
});

afterAll(async () => {
  // A crash under fuzzing shows here as a non-zero or signal exit.
  expect(await server?.stop()).toBe(0);
});

const FORM_BOUNDARY = "rest-fuzz-boundary";
function postForm(path: string, parts: ({ name: string; value: string } | { name: string; filename: string; data: Buffer })[]): Promise<Answer> {
  let body = "";
  const chunks: Buffer[] = [];
  for (const p of parts) {
    body = `--${FORM_BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if ("value" in p) chunks.push(Buffer.from(`${body}\r\n\r\n${p.value}\r\n`));
    else chunks.push(Buffer.from(`${body}; filename="${p.filename}"\r\n\r\n`), p.data, Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${FORM_BOUNDARY}--\r\n`));
  return send("POST", path, { "content-type": `multipart/form-data; boundary=${FORM_BOUNDARY}` }, Buffer.concat(chunks));
}

async function createUpload(bytes: number): Promise<string> {
  const answer = await send("POST", "/v1/uploads", { "content-type": "application/json" }, JSON.stringify({ filename: "u.bin", purpose: "batch", bytes }));
  expect(answer.status, answer.body.toString()).toBe(200);
  return (JSON.parse(answer.body.toString()) as { id: string }).id;
}

// ---------------------------------------------------------------------------------------------------
// 1. Query strings of GET /v1/files

const LIST_PARAMS = ["after", "limit", "order", "purpose"] as const;

type QueryValue = string | { ref: number };
const queryPair = fc.record({
  key: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...LIST_PARAMS) },
    { weight: 1, arbitrary: fc.constantFrom("Limit", "LIMIT", "limit[]", "after ", "before", "", "order\u0000") },
    { weight: 1, arbitrary: junkText },
  ),
  value: fc.oneof(
    fc.constantFrom<QueryValue>("", "asc", "desc", "ASC", ...ALL_PURPOSES, "nope"),
    fc.nat({ max: 2 }).map((ref): QueryValue => ({ ref })),
    numberText,
    idText,
    junkText,
  ),
  encoding: fc.constantFrom("component", "raw", "bare"),
});

function encodeQuery(pairs: { key: string; value: QueryValue; encoding: string }[]): string {
  return pairs
    .map(({ key, value, encoding }) => {
      const text = typeof value === "string" ? value : refs[value.ref]!.id;
      if (encoding === "component") return `${encodeURIComponent(key.toWellFormed())}=${encodeURIComponent(text.toWellFormed())}`;
      if (encoding === "raw") return `${rawEncode(key)}=${rawEncode(text)}`;
      return rawEncode(key); // a key without '='
    })
    .join("&");
}

describe("REST request parsing under fast-check", () => {
  it("GET /v1/files with random query strings: 200 exactly when every list parameter is valid, else 400 naming a spoiled one", async () => {
    const known = new Map(refs.map((r) => [r.id, r.purpose]));
    const seen = { ok: 0, refused: 0 };
    await check(fc.array(queryPair, { maxLength: 6 }), async (pairs) => {
      const query = encodeQuery(pairs);
      const path = `/v1/files?${query}`;
      // The server's own reading of the target: the same WHATWG parser, so '+', '#' and bad escapes agree.
      const params = new URL(path, "http://localhost").searchParams;
      const spoiled = new Set<string>();
      for (const name of LIST_PARAMS) {
        const values = params.getAll(name);
        if (values.length > 1) spoiled.add(name);
        const value = values[0];
        if (values.length !== 1) continue;
        if (name === "limit" && !(/^\d{1,6}$/.test(value!) && Number(value) >= 1 && Number(value) <= 10_000)) spoiled.add(name);
        if (name === "order" && value !== "asc" && value !== "desc") spoiled.add(name);
        if (name === "purpose" && value !== "" && !ALL_PURPOSES.includes(value!)) spoiled.add(name);
        if (name === "after" && value !== "" && !known.has(value!)) spoiled.add(name);
      }
      const answer = await send("GET", path);
      const context = `GET ${path.slice(0, 400)}; spoiled: ${[...spoiled].join(", ") || "none"}`;
      const error = expectAnswer("GET", answer, context);
      if (spoiled.size > 0) {
        expect(answer.status, context).toBe(400);
        expect([...spoiled], context).toContain(error!.param);
        seen.refused++;
        return;
      }
      expect(answer.status, context).toBe(200);
      seen.ok++;
      const page = JSON.parse(answer.body.toString()) as { object: string; data: { id: string; purpose: string }[]; has_more: boolean };
      expect(page.object).toBe("list");
      const limit = params.get("limit");
      expect(page.data.length, context).toBeLessThanOrEqual(limit ? Number(limit) : 10_000);
      for (const file of page.data) {
        expect(known.get(file.id), context).toBe(file.purpose);
        if (params.get("purpose")) expect(file.purpose, context).toBe(params.get("purpose"));
        expect(file.id, context).not.toBe(params.get("after"));
      }
    });
    // Both outcomes must be common, or the oracle is only ever half tested.
    expect(seen.ok).toBeGreaterThan(RUNS / 10);
    expect(seen.refused).toBeGreaterThan(RUNS / 10);
    await expectAccountedFor("after the query-string property");
  });

  // -------------------------------------------------------------------------------------------------
  // 2. Paths under /v1/

  const segment = fc.oneof(
    fc.constantFrom("", ".", "..", "%2e", "%2E%2e", ".%2e", "..%2F", "%2F", "%2f..%2f", "%5C", "%00", "%", "%zz", "file-", "content", "parts", "complete", "cancel", "files", "uploads", "v1", "healthz", "metrics", "index.html"),
    fc.string({ maxLength: 12 }).map(rawEncode),
    fc.string({ unit: "grapheme", maxLength: 8 }).map((s) => encodeURIComponent(s.toWellFormed())),
    idText.map(rawEncode),
    fc.integer({ min: 1, max: 2500 }).map((n) => "a".repeat(n)),
  );

  it("random paths under /v1/ with every method: only a GET of the list route succeeds; the rest are 4xx in OpenAI's shape", async () => {
    const before = await listedIds();
    await check(
      fc.record({
        method: fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        root: fc.constantFrom("files", "uploads", "file", "Files", "", "..", "%2e%2e"),
        segments: fc.array(segment, { maxLength: 5 }),
        body: fc.constantFrom("none", "json", "form"),
      }),
      async ({ method, root, segments, body }) => {
        const path = `/v1/${[root, ...segments].join("/")}`;
        const normalised = new URL(path, "http://localhost").pathname;
        const request: { headers: Record<string, string>; body?: string } =
          body === "json" ? { headers: { "content-type": "application/json" }, body: "{}" }
          : body === "form" ? { headers: { "content-type": `multipart/form-data; boundary=${FORM_BOUNDARY}` }, body: `--${FORM_BOUNDARY}--\r\n` }
          : { headers: {} };
        const answer = await send(method, path, request.headers, method === "GET" || method === "HEAD" ? undefined : request.body);
        const context = `${method} ${path.slice(0, 300)} (routed as ${normalised.slice(0, 300)})`;
        expectAnswer(method, answer, context);
        // HEAD is served on content but not (yet) on the other GET routes, where it is a 405 with Allow.
        if (method === "GET" && normalised === "/v1/files") expect(answer.status, context).toBe(200);
        else if (method === "HEAD" && normalised === "/v1/files") expect([200, 405], context).toContain(answer.status);
        else expect(answer.status, context).toBeGreaterThanOrEqual(400);
        if (answer.status === 405) expect(answer.headers.allow, context).toBeTruthy();
      },
    );
    expect(await listedIds()).toEqual(before);
    await expectAccountedFor("after the path property");
  });

  // -------------------------------------------------------------------------------------------------
  // 3 and 4. JSON bodies: POST /v1/uploads and POST /v1/uploads/{id}/complete

  type Mutation = { op: "delete"; key: string } | { op: "set"; key: string; value: unknown } | { op: "nested"; key: string; inner: string; value: unknown } | { op: "add"; key: string; value: unknown };
  const jsonValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), numberText.map(Number), fc.constantFrom(null, "", 0, -1, 1.5, 2 ** 53, [], {}, "abc"));
  const mutation = (keys: string[], nestedKeys: Record<string, string[]>): fc.Arbitrary<Mutation> =>
    fc.oneof(
      fc.record({ op: fc.constant("delete" as const), key: fc.constantFrom(...keys) }),
      fc.record({ op: fc.constant("set" as const), key: fc.constantFrom(...keys), value: jsonValue }),
      fc.record({ op: fc.constant("add" as const), key: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom(...keys)), value: jsonValue }),
      ...Object.entries(nestedKeys).map(([key, inner]) =>
        fc.record({ op: fc.constant("nested" as const), key: fc.constant(key), inner: fc.constantFrom(...inner, "extra"), value: jsonValue }),
      ),
    );

  /** Applies the mutations; returns the body and the top-level fields it touched. */
  function mutate(valid: Record<string, unknown>, mutations: Mutation[]): { body: Record<string, unknown>; touched: Set<string> } {
    const body = structuredClone(valid);
    const touched = new Set<string>();
    for (const m of mutations) {
      if (m.op === "delete") delete body[m.key];
      else if (m.op === "nested") {
        const inner = body[m.key];
        if (inner && typeof inner === "object" && !Array.isArray(inner)) (inner as Record<string, unknown>)[m.inner] = m.value;
        else continue;
      } else Object.defineProperty(body, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      touched.add(m.key);
    }
    return { body, touched };
  }

  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8", "Application/JSON", "application/json ; x=y") },
    { weight: 1, arbitrary: fc.constantFrom("text/plain", "", "application/jsonx", "application/json-patch+json", "multipart/form-data; boundary=x") },
  );
  const typeHeader = (type: string): Record<string, string> => (type ? { "content-type": type } : {});
  const isJsonType = (type: string) => type.split(";")[0]!.trim().toLowerCase() === "application/json";

  /** A body that is not a mutated valid one: arbitrary JSON text, or valid JSON with bytes spoiled. */
  const otherBody = (valid: Record<string, unknown>) =>
    fc.oneof(
      fc.json({ maxDepth: 3 }),
      junkText,
      fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), cut: fc.boolean() }).map(({ at, byte, cut }) => {
        const text = Buffer.from(JSON.stringify(valid));
        const i = at % text.length;
        if (cut) return text.subarray(0, i).toString("latin1");
        text[i] = byte;
        return text.toString("latin1");
      }),
    );

  const CREATE_FIELDS = ["filename", "purpose", "bytes", "mime_type", "expires_after"];
  const VALID_CREATE = { filename: "fuzz.bin", purpose: "batch", bytes: 1000, mime_type: "text/plain", expires_after: { anchor: "created_at", seconds: 3600 } };

  it("POST /v1/uploads with mutated and random JSON: an untouched body succeeds, a spoiled one is 4xx naming a touched field", async () => {
    let created = 0;
    await check(
      fc.record({
        type: contentType,
        body: fc.oneof(
          { weight: 3, arbitrary: fc.array(mutation(CREATE_FIELDS, { expires_after: ["anchor", "seconds"] }), { maxLength: 3 }).map((m) => ({ kind: "mutated" as const, ...mutate(VALID_CREATE, m) })) },
          { weight: 1, arbitrary: otherBody(VALID_CREATE).map((text) => ({ kind: "other" as const, text })) },
        ),
      }),
      async ({ type, body }) => {
        const text = body.kind === "mutated" ? JSON.stringify(body.body) : body.text;
        const answer = await send("POST", "/v1/uploads", typeHeader(type), Buffer.from(text, body.kind === "other" ? "latin1" : "utf8"));
        const context = `content-type ${JSON.stringify(type)}, body ${text.slice(0, 300)}`;
        const error = expectAnswer("POST", answer, context);
        if (!isJsonType(type)) {
          expect(answer.status, context).toBe(415);
          expect(error!.param, context).toBeNull();
          return;
        }
        if (body.kind === "mutated") {
          const spoiled = [...body.touched].filter((k) => CREATE_FIELDS.includes(k));
          if (spoiled.length === 0) expect(answer.status, context).toBe(200);
          if (error) {
            expect([400, 413], context).toContain(answer.status);
            expect(spoiled, context).toContain(error.param?.split(".")[0]);
          }
        } else if (error) {
          expect([400, 413], context).toContain(answer.status);
          expect([null, ...CREATE_FIELDS, "expires_after.anchor", "expires_after.seconds"], context).toContain(error.param);
        }
        if (answer.status === 200) {
          created++;
          const upload = JSON.parse(answer.body.toString()) as { id: string; status: string; bytes: number };
          expect(upload.status, context).toBe("pending");
          const cancelled = await send("POST", `/v1/uploads/${upload.id}/cancel`);
          expect(cancelled.status, context).toBe(200);
        }
      },
    );
    expect(created).toBeGreaterThan(RUNS / 10);
    await expectAccountedFor("after the create-upload property");
  });

  it("POST /v1/uploads/{id}/complete with mutated and random JSON: an untouched body assembles exactly the part's bytes", async () => {
    let completed = 0;
    await check(
      fc.record({
        type: contentType,
        mutations: fc.array(mutation(["part_ids", "md5"], {}), { maxLength: 3 }),
        other: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) }),
      }),
      async ({ type, mutations, other }) => {
        const data = randomBytes(300);
        const uploadId = await createUpload(data.length);
        const added = await postForm(`/v1/uploads/${uploadId}/parts`, [{ name: "data", filename: "p", data }]);
        expect(added.status, added.body.toString()).toBe(200);
        const partId = (JSON.parse(added.body.toString()) as { id: string }).id;
        const valid = { part_ids: [partId], md5: createHash("md5").update(data).digest("hex") };
        const { body, touched } = mutate(valid, mutations);
        const text = other ?? JSON.stringify(body);
        const answer = await send("POST", `/v1/uploads/${uploadId}/complete`, typeHeader(type), text);
        const context = `content-type ${JSON.stringify(type)}, body ${text.slice(0, 300)}`;
        const error = expectAnswer("POST", answer, context);
        if (!isJsonType(type)) {
          expect(answer.status, context).toBe(415);
        } else if (other === null) {
          const spoiled = [...touched].filter((k) => k in valid);
          if (spoiled.length === 0) expect(answer.status, context).toBe(200);
          if (error) {
            expect(answer.status, context).toBe(400);
            expect(spoiled, context).toContain(error.param);
          }
        } else if (error) {
          expect([null, "part_ids", "md5"], context).toContain(error.param);
        }
        const state = JSON.parse((await send("GET", `/v1/uploads/${uploadId}`)).body.toString()) as { status: string; file: { id: string; bytes: number } | null };
        if (answer.status === 200) {
          completed++;
          expect(state.status, context).toBe("completed");
          const content = await send("GET", `/v1/files/${state.file!.id}/content`);
          expect(sha256(content.body), context).toBe(sha256(data));
          expect((await send("DELETE", `/v1/files/${state.file!.id}`)).status).toBe(200);
        } else {
          expect(state.status, context).toBe("pending");
          expect((await send("POST", `/v1/uploads/${uploadId}/cancel`)).status).toBe(200);
        }
        await expectAccountedFor(context);
      },
    );
    expect(completed).toBeGreaterThan(RUNS / 10);
  });

  // -------------------------------------------------------------------------------------------------
  // 5. The grammar of multipart forms, on /v1/files and on Upload parts

  // RFC 2046 bchars; those outside an RFC 2045 token only work in a quoted boundary parameter.
  const boundaryText = fc.oneof(
    { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9'+_\-.]{1,70}$/) },
    { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9'()+_,\-./:=?]{1,70}$/) },
    { weight: 1, arbitrary: fc.constantFrom("a", "-".repeat(70), "x".repeat(71), "with space", 'quo"te', "semi;colon", "") },
  );
  const FIELD_NAMES = ["purpose", "file", "data", "expires_after[anchor]", "expires_after[seconds]"];
  const fieldName = fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...FIELD_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });
  const filename = fc.oneof({ weight: 4, arbitrary: fc.constantFrom("a.txt", "data.bin", "résumé.pdf") }, { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) });
  const fieldValue = fc.oneof(fc.constantFrom(...PURPOSES, "nope", "", "created_at", "3600", "abc"), junkText);
  const payload = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 4096 }).map((n) => randomBytes(n)) },
    { weight: 1, arbitrary: fc.constantFrom(MAX_PART + 1, MAX_FILE + 1).map((n) => randomBytes(n)) },
  );
  const disposition = fc.constantFrom("quoted", "unquoted", "upper", "star", "reordered", "twice", "no-name", "no-form-data");
  const part = fc.oneof(
    fc.record({ kind: fc.constant("field" as const), name: fieldName, value: fieldValue, disposition }),
    fc.record({
      kind: fc.constant("file" as const),
      name: fieldName,
      filename,
      data: payload,
      disposition,
      type: fc.constantFrom(undefined, "application/octet-stream", "text/plain; charset=utf-8", "garbage", ""),
      extra: fc.constantFrom(undefined, "Content-Transfer-Encoding: base64", "X-Junk: y", "X-Folded: a\r\n\tb"),
    }),
  );
  type FormPart = typeof part extends fc.Arbitrary<infer P> ? P : never;

  function dispositionOf(p: FormPart): string {
    const name = p.name;
    const file = p.kind === "file" ? p.filename : undefined;
    const fn = file === undefined ? "" : `; filename="${file.replace(/["\r\n]/g, "_")}"`;
    switch (p.disposition) {
      case "unquoted":
        return `form-data; name=${name}${file === undefined ? "" : `; filename=${file}`}`;
      case "upper":
        return `FORM-DATA; NAME="${name}"${fn.toUpperCase()}`;
      case "star":
        return `form-data; name="${name}"${file === undefined ? "" : `; filename*=UTF-8''${encodeURIComponent(file.toWellFormed())}`}`;
      case "reordered":
        return `form-data${fn}; name="${name}"`;
      case "twice":
        return `form-data; name="${name}"; name="other"${fn}${fn}`;
      case "no-name":
        return `form-data${fn}`;
      case "no-form-data":
        return `attachment; name="${name}"${fn}`;
      default:
        return `form-data; name="${name}"${fn}`;
    }
  }

  /** A form the endpoint should take (a known purpose and one file part), in a random spelling, with random extra parts. */
  const wellFormedParts = (fileField: string) =>
    fc
      .record({
        purpose: fc.constantFrom(...PURPOSES),
        purposeFirst: fc.boolean(),
        file: fc.record({
          kind: fc.constant("file" as const),
          name: fc.constant(fileField),
          filename: fc.constantFrom("a.txt", "data.bin", "résumé.pdf", "with space.txt"),
          data: payload,
          disposition: fc.constantFrom("quoted", "unquoted", "upper", "star", "reordered"),
          type: fc.constantFrom(undefined, "application/octet-stream", "text/plain; charset=utf-8", "garbage", ""),
          extra: fc.constantFrom(undefined, "Content-Transfer-Encoding: base64", "X-Junk: y"),
        }),
        others: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(part, { maxLength: 2 }) }),
      })
      .map(({ purpose, purposeFirst, file, others }): FormPart[] => {
        const field: FormPart = { kind: "field", name: "purpose", value: purpose, disposition: "quoted" };
        return [...(purposeFirst ? [field, file] : [file, field]), ...others];
      });

  const formSpec = (fileField: string) => fc.record({
    boundary: boundaryText,
    header: fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom("plain", "quoted", "upper", "charset", "nospace") },
      { weight: 1, arbitrary: fc.constantFrom("twice", "mismatch") },
    ),
    parts: fc.oneof(fc.array(part, { maxLength: 4 }), wellFormedParts(fileField)),
    eol: fc.oneof({ weight: 7, arbitrary: fc.constant("\r\n") }, { weight: 1, arbitrary: fc.constant("\n") }),
    preamble: fc.option(junkText, { freq: 4 }),
    epilogue: fc.option(junkText, { freq: 4 }),
    close: fc.oneof({ weight: 7, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  });
  type FormSpec = ReturnType<typeof formSpec> extends fc.Arbitrary<infer S> ? S : never;

  function build(spec: FormSpec): { contentType: string; body: Buffer } {
    const { boundary: b, eol } = spec;
    const contentType = {
      plain: `multipart/form-data; boundary=${b}`,
      quoted: `multipart/form-data; boundary="${b}"`,
      upper: `Multipart/Form-Data; BOUNDARY=${b}`,
      charset: `multipart/form-data; charset=utf-8; boundary=${b}`,
      nospace: `multipart/form-data;boundary=${b}`,
      twice: `multipart/form-data; boundary=${b}; boundary=zz${b}`,
      mismatch: `multipart/form-data; boundary=not-${b}`,
    }[spec.header];
    const out: Buffer[] = [];
    if (spec.preamble !== null) out.push(Buffer.from(`${spec.preamble}${eol}`));
    for (const p of spec.parts) {
      out.push(Buffer.from(`--${b}${eol}Content-Disposition: ${dispositionOf(p)}${eol}`));
      if (p.kind === "file") {
        if (p.type !== undefined) out.push(Buffer.from(`Content-Type: ${p.type}${eol}`));
        if (p.extra !== undefined) out.push(Buffer.from(`${p.extra}${eol}`));
        out.push(Buffer.from(eol), p.data, Buffer.from(eol));
      } else {
        out.push(Buffer.from(`${eol}${p.value}${eol}`));
      }
    }
    if (spec.close) out.push(Buffer.from(`--${b}--${eol}`));
    if (spec.epilogue !== null) out.push(Buffer.from(spec.epilogue));
    // A header value cannot carry control characters or non-Latin-1 text: Node would refuse to send it.
    return { contentType: contentType.replace(/[^\x20-\x7e]/g, "_"), body: Buffer.concat(out) };
  }

  it("POST /v1/files with forms of random grammar: a 200 stores exactly the bytes of a 'file' part sent", async () => {
    let stored = 0;
    await check(formSpec("file"), async (spec) => {
      const { contentType, body } = build(spec);
      const answer = await send("POST", "/v1/files", { "content-type": contentType }, body);
      const context = `content-type ${contentType}\n--- body ---\n${body.toString("latin1").slice(0, 800)}`;
      expectAnswer("POST", answer, context);
      if (answer.status === 200) {
        const file = JSON.parse(answer.body.toString()) as { id: string; bytes: number; purpose: string };
        const candidates = spec.parts.filter((p) => p.kind === "file" && p.name === "file").map((p) => sha256((p as { data: Buffer }).data));
        const content = await send("GET", `/v1/files/${file.id}/content`);
        expect(content.status, context).toBe(200);
        expect(content.body.length, context).toBe(file.bytes);
        expect(candidates, context).toContain(sha256(content.body));
        expect(PURPOSES, context).toContain(file.purpose);
        expect((await send("DELETE", `/v1/files/${file.id}`)).status).toBe(200);
        stored++;
      }
      await expectAccountedFor(context);
    });
    // The byte-for-byte check above must not be vacuous: a good share of the forms are accepted.
    expect(stored).toBeGreaterThan(RUNS / 10);
  });

  it("POST /v1/uploads/{id}/parts with forms of random grammar: 200 or a 4xx, and only accepted parts are stored", async () => {
    const before = partsAccepted;
    await check(formSpec("data"), async (spec) => {
      const { contentType, body } = build(spec);
      const answer = await send("POST", `/v1/uploads/${partsUpload}/parts`, { "content-type": contentType }, body);
      const context = `content-type ${contentType}\n--- body ---\n${body.toString("latin1").slice(0, 800)}`;
      expectAnswer("POST", answer, context);
      if (answer.status === 200) {
        expect(spec.parts.some((p) => p.kind === "file" && p.name === "data"), context).toBe(true);
        const part = JSON.parse(answer.body.toString()) as { object: string; upload_id: string };
        expect(part).toMatchObject({ object: "upload.part", upload_id: partsUpload });
        partsAccepted++;
      }
      await expectAccountedFor(context);
    });
    expect(partsAccepted - before).toBeGreaterThan(RUNS / 10);
    expect((await send("GET", "/healthz")).status).toBe(200);
  });
});
