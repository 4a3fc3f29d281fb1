/**
 * Credentials against a moto that enforces IAM (every request's signature and policy are checked):
 * keys from the server's environment and from a shared profile (the default chain, with no keys in
 * the config), and temporary credentials from STS AssumeRole given as access key, secret and
 * session token. Each way also has a negative twin, so a test cannot pass by accident.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { awsQuery, motoAllowUnauthenticated, xmlText, type AwsCredentials } from "../support/aws-signed.js";
import { tempDir } from "../support/env.js";
import { startMoto, type MotoServer } from "../support/moto.js";
import { runServerToExit, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { sha256 } from "../support/test-helpers.js";

const ACCOUNT = "123456789012"; // moto's default account
const ALLOW_ALL = (actions: string[]) => JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: actions, Resource: "*" }] });

let moto: MotoServer;
let user: AwsCredentials;
let bucket: string;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  moto = await startMoto({ INITIAL_NO_AUTH_ACTION_COUNT: "0" });
  // Set-up: an IAM user with S3 access that may assume a role with S3 access. Moto lets these
  // through unchecked, then enforces credentials on everything after.
  const anyone = { accessKeyId: "AKIASETUPSETUPSETUP0", secretAccessKey: "setup" };
  await motoAllowUnauthenticated(moto.endpoint, 100);
  await awsQuery(moto.endpoint, "iam", "CreateUser", { UserName: "files-svc" }, anyone);
  await awsQuery(moto.endpoint, "iam", "PutUserPolicy", { UserName: "files-svc", PolicyName: "files", PolicyDocument: ALLOW_ALL(["s3:*", "sts:AssumeRole"]) }, anyone);
  const key = await awsQuery(moto.endpoint, "iam", "CreateAccessKey", { UserName: "files-svc" }, anyone);
  user = { accessKeyId: xmlText(key, "AccessKeyId"), secretAccessKey: xmlText(key, "SecretAccessKey") };
  const trust = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Principal: { AWS: `arn:aws:iam::${ACCOUNT}:user/files-svc` }, Action: "sts:AssumeRole" }] };
  await awsQuery(moto.endpoint, "iam", "CreateRole", { RoleName: "files-role", AssumeRolePolicyDocument: JSON.stringify(trust) }, anyone);
  await awsQuery(moto.endpoint, "iam", "PutRolePolicy", { RoleName: "files-role", PolicyName: "s3", PolicyDocument: ALLOW_ALL(["s3:*"]) }, anyone);
  await motoAllowUnauthenticated(moto.endpoint, 0);

  bucket = `t-creds-${randomBytes(6).toString("hex")}`;
  const s3 = userS3();
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
});

afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  await moto?.stop();
});

function userS3(credentials: AwsCredentials = user): S3Client {
  return new S3Client({ endpoint: moto.endpoint, region: "us-east-1", forcePathStyle: true, credentials, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
}

/**
 * The server's environment with every credential source but the one under test switched off:
 * no keys in the environment, no readable shared files, no instance metadata service.
 */
async function isolatedEnv(extra: Record<string, string>): Promise<Record<string, string>> {
  const dir = await tempDir("s3-creds-env");
  return {
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
    AWS_SESSION_TOKEN: "",
    AWS_PROFILE: "",
    AWS_SHARED_CREDENTIALS_FILE: join(dir, "no-credentials"),
    AWS_CONFIG_FILE: join(dir, "no-config"),
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_WEB_IDENTITY_TOKEN_FILE: "",
    AWS_ROLE_ARN: "",
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
    AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
    ...extra,
  };
}

/** A provider config for the strict moto; `keys` replaces the fake keys s3ProviderConfig puts in ("" = none). */
async function configFor(label: string, keys: { aws_access_key_id: string; aws_secret_access_key: string; aws_session_token?: string }): Promise<object> {
  const dir = await tempDir(label);
  return s3ProviderConfig(moto.endpoint, bucket, { type: "sqlite", db_path: join(dir, "files.db") }, keys);
}
const NO_KEYS = { aws_access_key_id: "", aws_secret_access_key: "" };

/** Upload, read back, and check the object is in the bucket (read with the user's own keys). */
async function roundTrip(server: ServerProcess): Promise<void> {
  const openai = new OpenAI({ apiKey: "test-key", baseURL: `${server.baseUrl}/v1`, maxRetries: 0, timeout: 30_000 });
  const data = randomBytes(64 * 1024);
  const file = await openai.files.create({ file: await toFile(data, "creds.bin"), purpose: "user_data" });
  const back = Buffer.from(await (await openai.files.content(file.id)).arrayBuffer());
  expect(sha256(back)).toBe(sha256(data));
  const s3 = userS3();
  try {
    expect((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: file.id }))).ContentLength).toBe(data.length);
  } finally {
    s3.destroy();
  }
  await openai.files.delete(file.id);
}

async function start(config: object, env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer({ config, env });
  servers.push(server);
  return server;
}

/** Start-up must fail with one line saying access to the bucket is denied, and never echo `secret`. */
async function expectDenied(config: object, env: Record<string, string>, secret: string): Promise<string> {
  const { code, output } = await runServerToExit({ config, env }, 45_000);
  expect(code, output).not.toBe(0);
  expect(output).toContain(`access denied to bucket '${bucket}'`);
  expect(output).not.toContain(secret);
  return output;
}

describe("no keys in the config: the default credential chain", () => {
  it("uses keys from the server's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)", async () => {
    const env = await isolatedEnv({ AWS_ACCESS_KEY_ID: user.accessKeyId, AWS_SECRET_ACCESS_KEY: user.secretAccessKey });
    await roundTrip(await start(await configFor("s3-creds-env", NO_KEYS), env));
  });

  it("with a wrong secret in the environment, start-up fails naming the bucket", async () => {
    const env = await isolatedEnv({ AWS_ACCESS_KEY_ID: user.accessKeyId, AWS_SECRET_ACCESS_KEY: "wrong-env-secret-123" });
    await expectDenied(await configFor("s3-creds-env-bad", NO_KEYS), env, "wrong-env-secret-123");
  });

  it("uses a shared credentials file and profile (AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE)", async () => {
    const dir = await tempDir("s3-creds-profile");
    const file = join(dir, "credentials");
    await writeFile(
      file,
      `[default]\naws_access_key_id = AKIANOTTHEONE0000000\naws_secret_access_key = not-this-one\n\n` +
        `[files-test]\naws_access_key_id = ${user.accessKeyId}\naws_secret_access_key = ${user.secretAccessKey}\n`,
    );
    const env = await isolatedEnv({ AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: "files-test" });
    await roundTrip(await start(await configFor("s3-creds-profile", NO_KEYS), env));
    // The same file without AWS_PROFILE means its [default] profile, whose keys moto refuses.
    await expectDenied(await configFor("s3-creds-profile-default", NO_KEYS), await isolatedEnv({ AWS_SHARED_CREDENTIALS_FILE: file }), "not-this-one");
  });
});

describe("temporary credentials from STS (aws_session_token)", () => {
  let temp: Required<AwsCredentials>;
  beforeAll(async () => {
    const answer = await awsQuery(moto.endpoint, "sts", "AssumeRole", { RoleArn: `arn:aws:iam::${ACCOUNT}:role/files-role`, RoleSessionName: "files-test" }, user);
    temp = { accessKeyId: xmlText(answer, "AccessKeyId"), secretAccessKey: xmlText(answer, "SecretAccessKey"), sessionToken: xmlText(answer, "SessionToken") };
    expect(temp.accessKeyId).toMatch(/^ASIA/);
  });

  it("access key, secret and session token in the config work", async () => {
    const config = await configFor("s3-creds-sts", { aws_access_key_id: temp.accessKeyId, aws_secret_access_key: temp.secretAccessKey, aws_session_token: temp.sessionToken });
    await roundTrip(await start(config, await isolatedEnv({})));
  });

  it("the same three in the environment (AWS_SESSION_TOKEN) work through the default chain", async () => {
    const env = await isolatedEnv({ AWS_ACCESS_KEY_ID: temp.accessKeyId, AWS_SECRET_ACCESS_KEY: temp.secretAccessKey, AWS_SESSION_TOKEN: temp.sessionToken });
    await roundTrip(await start(await configFor("s3-creds-sts-env", NO_KEYS), env));
  });

  it("without the session token, start-up fails naming the bucket", async () => {
    const config = await configFor("s3-creds-sts-notoken", { aws_access_key_id: temp.accessKeyId, aws_secret_access_key: temp.secretAccessKey });
    await expectDenied(config, await isolatedEnv({}), temp.secretAccessKey);
  });

  it("with a wrong secret, start-up fails naming the bucket, and echoes neither secret nor token", async () => {
    const config = await configFor("s3-creds-sts-badsecret", { aws_access_key_id: temp.accessKeyId, aws_secret_access_key: "wrong-secret-456", aws_session_token: temp.sessionToken });
    const output = await expectDenied(config, await isolatedEnv({}), "wrong-secret-456");
    expect(output).not.toContain(temp.sessionToken);
  });
});
