/**
 * Sharing by team and project over the wire: three principals from API keys (with attributes) and
 * three from JWTs (groups/project claims through the default claims_mapping), a Llama Stack
 * access_policy, on REST (the openai SDK), gRPC and Connect, on SQLite and PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, createTestDatabase, tempDir, testS3Endpoint } from "../support/env.js";
import { s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { eventually, rejection, sha256 } from "../support/test-helpers.js";

// Obviously fake test keys.
const KEYS = { ann: "sk-test-ann-aaaaaaaaaaaaaaaaaaaa", ben: "sk-test-ben-bbbbbbbbbbbbbbbbbbbb", cat: "sk-test-cat-cccccccccccccccccccc" };
const ISSUER = "https://issuer.example.test";
const AUDIENCE = "files";

const POLICY = [
  { permit: { actions: ["create", "read", "update", "delete"] }, when: "user is owner", description: "owners do anything" },
  { permit: { actions: ["read"] }, when: "user in owners teams", description: "teammates read" },
  { permit: { actions: ["read"] }, when: ["user in owners projects"], description: "project members read" },
  { permit: { actions: ["delete"] }, when: ["user in owners teams", "user with lead in roles"], description: "team leads delete" },
];

const backends = [
  ["SQLite", async (dir: string) => ({ type: "sqlite", db_path: `${dir}/files.db` })],
  ["PostgreSQL", async () => ({ type: "postgres", url: await createTestDatabase("access-policy") })],
] as const;

for (const [backend, metadataStore] of backends) {
  describe(`files shared by team and project, on ${backend}`, () => {
    let server: ServerProcess;
    const tokens: Record<string, string> = { ...KEYS };

    beforeAll(async () => {
      const pair = await generateKeyPair("ES256", { extractable: true });
      const jwt = (sub: string, claims: Record<string, unknown>) =>
        new SignJWT(claims).setProtectedHeader({ alg: "ES256" }).setSubject(sub).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime("10m").sign(pair.privateKey);
      tokens.dan = await jwt("dan", { groups: ["ml"] });
      tokens.eve = await jwt("eve", { groups: "ops", project: "p1" });
      tokens.fay = await jwt("fay", { project: ["p1"] });
      const bucket = await createTestBucket("access-policy");
      const dir = await tempDir("access-policy");
      server = await startServer({
        config: {
          ...s3ProviderConfig(testS3Endpoint(), bucket, await metadataStore(dir)),
          server: {
            auth: {
              api_keys: [
                { key: KEYS.ann, principal: "ann", attributes: { teams: ["ml"], roles: ["lead"] } },
                { key: KEYS.ben, principal: "ben", attributes: { teams: ["ml"] } },
                { key: KEYS.cat, principal: "cat", attributes: { teams: ["ops"] } },
              ],
              jwt: { public_key: await exportSPKI(pair.publicKey), issuer: ISSUER, audience: AUDIENCE },
              access_policy: POLICY,
            },
          },
        },
      });
    });

    afterAll(async () => {
      await server?.stop();
    });

    const openai = (who: string) => new OpenAI({ apiKey: tokens[who]!, baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
    const rpc = (who: string, protocol: "grpc" | "connect" = "grpc"): Client<typeof FilesService> => {
      const auth: Interceptor = (next) => (req) => {
        req.header.set("authorization", `Bearer ${tokens[who]}`);
        return next(req);
      };
      const transport =
        protocol === "grpc"
          ? createGrpcTransport({ baseUrl: server.baseUrl, interceptors: [auth] })
          : createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1", interceptors: [auth] });
      return createClient(FilesService, transport);
    };
    const upload = async (who: string, name: string) => {
      const bytes = randomBytes(2048);
      return { file: await openai(who).files.create({ file: await toFile(bytes, name), purpose: "assistants" }), bytes };
    };
    const listedBy = async (who: string) => {
      const ids: string[] = [];
      for await (const f of openai(who).files.list({ limit: 2 })) ids.push(f.id);
      return ids;
    };

    it("teammates (API keys and JWT groups) list and read a file; others get 404 everywhere", async () => {
      const { file, bytes } = await upload("ann", "ml-notes.txt");
      for (const who of ["ann", "ben", "dan"]) {
        expect(await listedBy(who), who).toContain(file.id);
        expect((await openai(who).files.retrieve(file.id)).id).toBe(file.id);
        expect(sha256(Buffer.from(await (await openai(who).files.content(file.id)).arrayBuffer())), who).toBe(sha256(bytes));
        for (const protocol of ["grpc", "connect"] as const) {
          expect((await rpc(who, protocol).getFile({ fileId: file.id })).file!.id).toBe(file.id);
          expect((await rpc(who, protocol).listFiles({ limit: 100 })).data.map((f) => f.id)).toContain(file.id);
        }
      }
      for (const who of ["cat", "eve", "fay"]) {
        expect(await listedBy(who), who).not.toContain(file.id);
        await expect(openai(who).files.retrieve(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
        await expect(openai(who).files.content(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
        await expect(openai(who).files.delete(file.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
        const head = await fetch(`${server.baseUrl}/v1/files/${file.id}/content`, { method: "HEAD", headers: { authorization: `Bearer ${tokens[who]}` } });
        expect(head.status).toBe(404);
        // An `after` cursor naming an invisible file is as unknown as a made-up one.
        const cursor = await fetch(`${server.baseUrl}/v1/files?after=${file.id}`, { headers: { authorization: `Bearer ${tokens[who]}` } });
        expect(cursor.status).toBe(400);
        expect(((await cursor.json()) as { error: { param: string } }).error.param).toBe("after");
        for (const protocol of ["grpc", "connect"] as const) {
          const client = rpc(who, protocol);
          expect((await rejection(client.getFile({ fileId: file.id }))).code).toBe(Code.NotFound);
          expect((await rejection(client.deleteFile({ fileId: file.id }))).code).toBe(Code.NotFound);
          expect(
            (
              await rejection(
                (async () => {
                  for await (const _ of client.downloadFile({ fileId: file.id })) void _;
                })(),
              )
            ).code,
          ).toBe(Code.NotFound);
          expect((await rejection(client.listFiles({ limit: 10, after: file.id }))).code).toBe(Code.InvalidArgument);
        }
      }
    });

    it("a teammate who may read but not delete gets 403 / PERMISSION_DENIED, logged once with the deciding rule; a team lead deletes", async () => {
      const { file } = await upload("ben", "ben.txt");
      const res = await fetch(`${server.baseUrl}/v1/files/${file.id}`, { method: "DELETE", headers: { authorization: `Bearer ${KEYS.cat}` } });
      expect(res.status).toBe(404);
      const refused = await fetch(`${server.baseUrl}/v1/files/${file.id}`, { method: "DELETE", headers: { authorization: `Bearer ${tokens.dan}` } });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: unknown }).error).toEqual({
        message: expect.stringContaining("delete"),
        type: "invalid_request_error",
        param: null,
        code: "permission_denied",
      });
      await expect(openai("dan").files.delete(file.id)).rejects.toBeInstanceOf(OpenAI.PermissionDeniedError);
      expect((await rejection(rpc("dan").deleteFile({ fileId: file.id }))).code).toBe(Code.PermissionDenied);
      const audit = () => server.output.filter((l) => l.includes('"access denied"') && l.includes(file.id) && l.includes('"principal":"dan"'));
      // One line per refusal (REST twice, gRPC once); the server's output arrives asynchronously.
      await eventually(async () => expect(audit().length).toBe(3));
      expect(audit().length).toBe(3);
      expect(JSON.parse(audit()[0]!)).toMatchObject({ principal: "dan", action: "delete", file_id: file.id, rule: null, rule_description: "no matching rule" });
      expect((await openai("ben").files.retrieve(file.id)).id).toBe(file.id);
      expect((await openai("ann").files.delete(file.id)).deleted).toBe(true);
    });

    it("JWT project claims share by project; files uploaded over gRPC record their owner's attributes", async () => {
      async function* messages() {
        yield { payload: { case: "metadata" as const, value: { filename: "eve.bin", purpose: FilePurpose.ASSISTANTS } } };
        yield { payload: { case: "chunk" as const, value: randomBytes(1000) } };
      }
      const { file } = await rpc("eve").uploadFile(messages());
      expect((await openai("fay").files.retrieve(file!.id)).filename).toBe("eve.bin"); // project p1
      expect((await openai("cat").files.retrieve(file!.id)).filename).toBe("eve.bin"); // team ops
      await expect(openai("ann").files.retrieve(file!.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      expect((await rejection(rpc("fay").deleteFile({ fileId: file!.id }))).code).toBe(Code.PermissionDenied);
    });

    it("paging with small pages and cursors returns exactly the visible files, in order", async () => {
      const mine = [];
      for (let i = 0; i < 5; i++) mine.push((await upload(i % 2 ? "cat" : "ben", `p${i}.txt`)).file.id);
      const forBen = await listedBy("ben");
      const forCat = await listedBy("cat");
      expect(forBen).toEqual(expect.arrayContaining([mine[0], mine[2], mine[4]]));
      expect(forBen).not.toContain(mine[1]);
      expect(forCat).toEqual(expect.arrayContaining([mine[1], mine[3]]));
      expect(forCat).not.toContain(mine[0]);
      expect(new Set(forBen).size).toBe(forBen.length);
    });

    it("Uploads follow the policy: invisible to outsiders, read-only for teammates", async () => {
      const created = await openai("ann").uploads.create({ filename: "big.txt", purpose: "assistants", bytes: 3, mime_type: "text/plain" });
      const asCat = (path: string, init: RequestInit = {}) =>
        fetch(`${server.baseUrl}/v1/uploads/${created.id}${path}`, { method: "POST", ...init, headers: { authorization: `Bearer ${KEYS.cat}`, "content-type": "application/json" } });
      expect((await fetch(`${server.baseUrl}/v1/uploads/${created.id}`, { headers: { authorization: `Bearer ${KEYS.cat}` } })).status).toBe(404);
      expect((await asCat("/cancel")).status).toBe(404);
      expect((await asCat("/complete", { body: JSON.stringify({ part_ids: [`part_${"0".repeat(32)}`] }) })).status).toBe(404);
      const form = new FormData();
      form.set("data", new Blob([Buffer.from("abc")]), "data");
      const part = await fetch(`${server.baseUrl}/v1/uploads/${created.id}/parts`, { method: "POST", body: form, headers: { authorization: `Bearer ${KEYS.ben}` } });
      expect(part.status).toBe(403);
      expect((await fetch(`${server.baseUrl}/v1/uploads/${created.id}`, { headers: { authorization: `Bearer ${KEYS.ben}` } })).status).toBe(200);
      const own = await openai("ann").uploads.parts.create(created.id, { data: await toFile(Buffer.from("abc"), "p") });
      const done = await openai("ann").uploads.complete(created.id, { part_ids: [own.id] });
      expect((await openai("ben").files.retrieve(done.file!.id)).bytes).toBe(3);
      await expect(openai("cat").files.retrieve(done.file!.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    });
  });
}
