/**
 * The custom authenticator over the wire: a real endpoint decides each token; refusals are 401 /
 * UNAUTHENTICATED, an endpoint that does not answer in time is 503 / UNAVAILABLE, and the
 * attributes it gives drive the access policy on REST and gRPC.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rejection } from "../support/test-helpers.js";

let endpoint: Server;
let server: ServerProcess;
const asked: Array<{ api_key: string; request: { method: string; path: string } }> = [];

beforeAll(async () => {
  endpoint = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d));
    req.on("end", () => {
      const parsed = JSON.parse(body) as (typeof asked)[number];
      asked.push(parsed);
      const reply = (status: number, value: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
      const token = parsed.api_key;
      if (token === "tok-slow-0000000000") return void setTimeout(() => reply(200, { principal: "slow" }), 3000);
      if (token === "tok-garbage-0000000") return reply(200, { who: "knows" });
      if (token.startsWith("tok-ml-")) return reply(200, { principal: token.slice(7, 10), attributes: { teams: ["ml"] } });
      return reply(403, { message: "no" });
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/auth`;
  const bucket = await createTestBucket("custom-auth");
  const dir = await tempDir("custom-auth");
  server = await startServer({
    config: {
      ...s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }),
      server: { auth: { custom: { endpoint: url, timeout_seconds: 0.5, cache_ttl_seconds: 60 }, access_policy: "llama_stack_default" } },
    },
  });
});

afterAll(async () => {
  await server?.stop();
  await new Promise((resolve) => endpoint?.close(resolve));
});

const openai = (token: string) => new OpenAI({ apiKey: token, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
const rpc = (token: string) => {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [auth] }));
};

describe("the custom authenticator", () => {
  it("shares by the attributes the endpoint gives, and is asked once per token while cached", async () => {
    const before = asked.length;
    const file = await openai("tok-ml-ann-0000000").files.create({ file: await toFile(Buffer.from("x"), "a.txt"), purpose: "assistants" });
    expect((await openai("tok-ml-bob-0000000").files.retrieve(file.id)).id).toBe(file.id);
    expect((await rpc("tok-ml-bob-0000000").getFile({ fileId: file.id })).file!.id).toBe(file.id);
    expect(asked.slice(before).map((a) => a.api_key)).toEqual(["tok-ml-ann-0000000", "tok-ml-bob-0000000"]);
    expect(asked[before]!.request).toMatchObject({ method: "POST", path: "/v1/files" });
  });

  it("a refusal or a garbage answer is 401 / UNAUTHENTICATED", async () => {
    for (const token of ["tok-nobody-0000000", "tok-garbage-0000000"]) {
      await expect(openai(token).files.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      expect((await rejection(rpc(token).listFiles({ limit: 1 }))).code).toBe(Code.Unauthenticated);
    }
  });

  it("an endpoint that does not answer in time is 503 / UNAVAILABLE", async () => {
    const res = await fetch(`${server.baseUrl}/v1/files`, { headers: { authorization: "Bearer tok-slow-0000000000" } });
    expect(res.status).toBe(503);
    expect((await rejection(rpc("tok-slow-0000000000").listFiles({ limit: 1 }))).code).toBe(Code.Unavailable);
  });
});
