/**
 * Default expiry per purpose (`default_ttl_seconds` in the provider config), on every upload path:
 * the REST form (official openai SDK), the Uploads API (SDK and gRPC) and gRPC UploadFile.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExpiresAfterAnchor, FilePurpose, FilesService, type File as GrpcFile } from "../../gen/ts/files/v1/files_pb.js";
import { createTestBucket, createTestDatabase, tempDir, testS3Endpoint } from "../support/env.js";
import { runServerToExit, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const DAYS_30 = 2_592_000;

interface Setup {
  label: string;
  /** Provider config keys added to the S3 provider config. */
  extra: object;
  metadata: () => Promise<object>;
  /** The expiry in seconds each purpose gets by default (null: never). */
  expected: { batch: number | null; assistants: number | null; user_data: number | null };
}

const SETUPS: Setup[] = [
  {
    label: "built-in defaults (SQLite)",
    extra: {},
    metadata: async () => ({ type: "sqlite", db_path: `${await tempDir("expiry-defaults")}/files.db` }),
    expected: { batch: DAYS_30, assistants: null, user_data: null },
  },
  {
    label: "default_ttl_seconds {assistants: 7200, batch: none} (PostgreSQL)",
    extra: { default_ttl_seconds: { assistants: 7200, batch: "none" } },
    metadata: async () => ({ type: "postgres", url: await createTestDatabase("expiry_defaults") }),
    expected: { batch: null, assistants: 7200, user_data: null },
  },
];

async function* grpcUpload(purpose: FilePurpose, seconds?: number) {
  yield {
    payload: {
      case: "metadata" as const,
      value: {
        filename: "g.jsonl",
        purpose,
        expiresAfter: seconds === undefined ? undefined : { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: BigInt(seconds) },
      },
    },
  };
  yield { payload: { case: "chunk" as const, value: Buffer.from('{"a":1}\n') } };
}

const GRPC_PURPOSE = { batch: FilePurpose.BATCH, assistants: FilePurpose.ASSISTANTS, user_data: FilePurpose.USER_DATA } as const;
type Purpose = keyof typeof GRPC_PURPOSE;
const PURPOSES = Object.keys(GRPC_PURPOSE) as Purpose[];

/** expires_at as the default says, from created_at. */
const after = (createdAt: number, seconds: number | null) => (seconds === null ? null : createdAt + seconds);
const grpcExpiry = (file: GrpcFile) => (file.expiresAt === undefined ? null : Number(file.expiresAt));

describe.each(SETUPS)("$label", ({ label, extra, metadata, expected }) => {
  let server: ServerProcess;
  let client: OpenAI;
  let grpc: Client<typeof FilesService>;

  beforeAll(async () => {
    const bucket = await createTestBucket(`expiry-defaults-${label.slice(0, 10)}`);
    server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, await metadata(), extra) });
    client = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0 });
    grpc = createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl }));
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it("REST (openai SDK files.create): each purpose gets its default, and retrieve and list agree", async () => {
    for (const purpose of PURPOSES) {
      const file = await client.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), "in.jsonl"), purpose });
      expect(file.expires_at, purpose).toBe(after(file.created_at, expected[purpose]));
      expect((await client.files.retrieve(file.id)).expires_at).toBe(file.expires_at);
      let listed: number | null | undefined;
      for await (const f of client.files.list({ purpose })) if (f.id === file.id) listed = f.expires_at;
      expect(listed).toBe(file.expires_at);
    }
  });

  it("REST: an explicit expires_after wins over the default", async () => {
    for (const purpose of PURPOSES) {
      const file = await client.files.create({
        file: await toFile(Buffer.from("x"), "x.jsonl"),
        purpose,
        expires_after: { anchor: "created_at", seconds: 3600 },
      });
      expect(file.expires_at, purpose).toBe(file.created_at + 3600);
    }
  });

  it("gRPC UploadFile: the default without expires_after, the given expiry with it", async () => {
    for (const purpose of PURPOSES) {
      const { file } = await grpc.uploadFile(grpcUpload(GRPC_PURPOSE[purpose]));
      expect(grpcExpiry(file!), purpose).toBe(after(Number(file!.createdAt), expected[purpose]));
      const { file: explicit } = await grpc.uploadFile(grpcUpload(GRPC_PURPOSE[purpose], 86_400));
      expect(grpcExpiry(explicit!)).toBe(Number(explicit!.createdAt) + 86_400);
      const { file: got } = await grpc.getFile({ fileId: file!.id });
      expect(got?.expiresAt).toBe(file!.expiresAt);
    }
  });

  it("Uploads API (openai SDK): the completed file gets the default, or the upload's expires_after", async () => {
    for (const purpose of PURPOSES) {
      for (const seconds of [undefined, 7 * 86_400]) {
        const data = Buffer.from(`{"purpose":"${purpose}"}\n`);
        const upload = await client.uploads.create({
          bytes: data.length,
          filename: "up.jsonl",
          mime_type: "application/jsonl",
          purpose,
          ...(seconds === undefined ? {} : { expires_after: { anchor: "created_at" as const, seconds } }),
        });
        const part = await client.uploads.parts.create(upload.id, { data: await toFile(data, "part") });
        const done = await client.uploads.complete(upload.id, { part_ids: [part.id] });
        const file = done.file!;
        expect(file.expires_at, `${purpose} ${seconds}`).toBe(after(file.created_at, seconds ?? expected[purpose]));
        expect((await client.files.retrieve(file.id)).expires_at).toBe(file.expires_at);
      }
    }
  });

  it("Uploads over gRPC: the completed file gets the default, or the upload's expires_after", async () => {
    for (const purpose of PURPOSES) {
      for (const seconds of [undefined, 7200]) {
        const { upload } = await grpc.createUpload({
          filename: "g.bin",
          purpose: GRPC_PURPOSE[purpose],
          bytes: 3n,
          expiresAfter: seconds === undefined ? undefined : { anchor: ExpiresAfterAnchor.CREATED_AT, seconds: BigInt(seconds) },
        });
        const { part } = await grpc.addUploadPart({ uploadId: upload!.id, data: Buffer.from("abc") });
        const done = await grpc.completeUpload({ uploadId: upload!.id, partIds: [part!.id] });
        const file = done.upload!.file!;
        expect(grpcExpiry(file), `${purpose} ${seconds}`).toBe(after(Number(file.createdAt), seconds ?? expected[purpose]));
      }
    }
  });
});

describe("default_ttl_seconds config errors", () => {
  it("refuses to start with an unknown purpose, naming the key", async () => {
    const config = s3ProviderConfig(testS3Endpoint(), "any-bucket", { type: "sqlite", db_path: ":memory:" }, {
      default_ttl_seconds: { batch: "none", fine_tuning: 3600 },
    });
    const { code, output } = await runServerToExit({ config });
    expect(code).toBe(1);
    expect(output).toContain("config.default_ttl_seconds");
    expect(output).toContain("'fine_tuning'");
  });

  it("refuses a value that is neither seconds nor none", async () => {
    const config = s3ProviderConfig(testS3Endpoint(), "any-bucket", { type: "sqlite", db_path: ":memory:" }, {
      default_ttl_seconds: { batch: "never" },
    });
    const { code, output } = await runServerToExit({ config });
    expect(code).toBe(1);
    expect(output).toContain("config.default_ttl_seconds.batch");
  });
});
