/**
 * Moving a Llama Stack 0.7.3 deployment with authentication here: Llama Stack itself (its server,
 * its custom auth provider, its remote::s3 files provider, its default policy) writes the bucket
 * and the database as three users; this service then serves that database with the
 * llama_stack_default preset and the same authentication endpoint, and every user sees exactly
 * the files it saw there, and can read them.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPython, ensureLlamaStackVenv } from "../../bench/python.js";
import { referenceDbPath, startReference, type ServiceProcess } from "../../bench/servers.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

// Obviously fake tokens, answered by the test's own authentication endpoint.
const USERS: Record<string, { principal: string; attributes: Record<string, string[]> }> = {
  "tok-ann-000000000000": { principal: "ann", attributes: { teams: ["ml"], roles: ["ann"] } },
  "tok-ben-000000000000": { principal: "ben", attributes: { teams: ["ml"], roles: ["ben"] } },
  "tok-cat-000000000000": { principal: "cat", attributes: { teams: ["ops"], roles: ["cat"] } },
};
const TOKENS = Object.keys(USERS);

let endpoint: Server;
let venv: string;
let s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
let endpointUrl: string;
let dir: string;
let bucket: string;
let reference: ServiceProcess | undefined;
let server: ServerProcess | undefined;
const seenThere = new Map<string, string[]>();
const uploaded = new Map<string, Buffer>();

const listAll = async (client: OpenAI) => {
  const ids: string[] = [];
  for await (const f of client.files.list({ limit: 100 })) ids.push(f.id);
  return ids.sort();
};

beforeAll(async () => {
  endpoint = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      const user = USERS[(JSON.parse(body) as { api_key: string }).api_key];
      res.writeHead(user ? 200 : 401, { "content-type": "application/json" }).end(JSON.stringify(user ?? { message: "unknown token" }));
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
  endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/auth`;

  const python = await findPython();
  if ("problems" in python) throw new Error(`no Python >= 3.12 for llama-stack: ${python.problems.join("; ")}`);
  venv = await ensureLlamaStackVenv(python);
  dir = await tempDir("llama-auth");
  bucket = await createTestBucket("llama-auth");
  s3 = { endpoint: testS3Endpoint(), region: "us-east-1", accessKeyId: process.env.AWS_ACCESS_KEY_ID || "test", secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "test" };
  reference = await startReference(venv, dir, s3, bucket, { provider_config: { type: "custom", endpoint: endpointUrl } });
  for (const [i, token] of TOKENS.entries()) {
    const client = new OpenAI({ apiKey: token, baseURL: `${reference.baseUrl}/v1`, maxRetries: 0 });
    for (let n = 0; n < 2; n++) {
      const data = Buffer.from(`file ${n} of ${USERS[token]!.principal}\n`.repeat(i + n + 1));
      const file = await client.files.create({ file: await toFile(data, `${USERS[token]!.principal}-${n}.txt`), purpose: "assistants" });
      uploaded.set(file.id, data);
    }
  }
  for (const token of TOKENS) seenThere.set(token, await listAll(new OpenAI({ apiKey: token, baseURL: `${reference.baseUrl}/v1`, maxRetries: 0 })));
  await reference.stop();
  reference = undefined;

  server = await startServer({
    config: {
      ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: referenceDbPath(dir) }),
      server: { auth: { custom: { endpoint: endpointUrl }, access_policy: "llama_stack_default" } },
    },
  });
}, 600_000);

afterAll(async () => {
  await reference?.stop();
  await server?.stop();
  await new Promise((resolve) => endpoint?.close(resolve));
});

describe("a database Llama Stack 0.7.3 wrote with authentication, served with the llama_stack_default preset", () => {
  it("Llama Stack shared by team: ann and ben see each other's files, cat only its own", () => {
    const [ann, ben, cat] = TOKENS.map((t) => seenThere.get(t)!);
    expect(ann).toHaveLength(4);
    expect(ben).toEqual(ann);
    expect(cat).toHaveLength(2);
  });

  it("every user sees exactly the files it saw there, and reads their bytes", async () => {
    for (const token of TOKENS) {
      const client = new OpenAI({ apiKey: token, baseURL: `${server!.baseUrl}/v1`, maxRetries: 0 });
      expect(await listAll(client), USERS[token]!.principal).toEqual(seenThere.get(token));
      for (const id of seenThere.get(token)!) {
        expect(Buffer.from(await (await client.files.content(id)).arrayBuffer())).toEqual(uploaded.get(id));
      }
      for (const id of uploaded.keys()) {
        if (!seenThere.get(token)!.includes(id)) await expect(client.files.retrieve(id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      }
    }
  });

  it("files written here read the same in Llama Stack: its users see them as this service decides", { timeout: 600_000 }, async () => {
    const mine = new OpenAI({ apiKey: TOKENS[2]!, baseURL: `${server!.baseUrl}/v1`, maxRetries: 0 });
    // With an expiry: Llama Stack never lists a row whose expires_at is null (it filters on expires_at > now).
    const file = await mine.files.create({
      file: await toFile(Buffer.from("written here\n"), "cat-here.txt"),
      purpose: "assistants",
      expires_after: { anchor: "created_at", seconds: 86_400 },
    });
    const here = new Map<string, string[]>();
    for (const token of TOKENS) here.set(token, await listAll(new OpenAI({ apiKey: token, baseURL: `${server!.baseUrl}/v1`, maxRetries: 0 })));
    await server!.stop();
    server = undefined;
    reference = await startReference(venv, dir, s3, bucket, { provider_config: { type: "custom", endpoint: endpointUrl } });
    for (const token of TOKENS) {
      const there = new OpenAI({ apiKey: token, baseURL: `${reference.baseUrl}/v1`, maxRetries: 0 });
      expect(await listAll(there), USERS[token]!.principal).toEqual(here.get(token));
    }
    const asCat = new OpenAI({ apiKey: TOKENS[2]!, baseURL: `${reference.baseUrl}/v1`, maxRetries: 0 });
    expect(Buffer.from(await (await asCat.files.content(file.id)).arrayBuffer()).toString()).toBe("written here\n");
  });

  it("an unknown token is 401 there as here", async () => {
    const client = new OpenAI({ apiKey: "tok-nobody-00000000", baseURL: `${reference!.baseUrl}/v1`, maxRetries: 0 });
    await expect(client.files.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("an unknown token is 401 here", async () => {
    const mine = await startServer({
      config: {
        ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: referenceDbPath(dir) }),
        server: { auth: { custom: { endpoint: endpointUrl }, access_policy: "llama_stack_default" } },
      },
    });
    try {
      const client = new OpenAI({ apiKey: "tok-nobody-00000000", baseURL: `${mine.baseUrl}/v1`, maxRetries: 0 });
      await expect(client.files.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    } finally {
      await mine.stop();
    }
  });
});
