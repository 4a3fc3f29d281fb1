/**
 * Signed calls to the AWS query and JSON APIs (IAM, STS, KMS) of a test endpoint such as moto,
 * for which no SDK client is installed: SigV4 from @smithy/signature-v4 (a dependency of the S3
 * client), fetch for the transport. Enough to set up users, roles, temporary credentials and keys.
 */
import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** node:crypto in the shape SignatureV4 wants (a hash, or an HMAC when given a secret). */
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === "string") return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

export class AwsCallError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what} failed: HTTP ${status}: ${body.slice(0, 500)}`);
  }
}

/** One signed POST to `endpoint`; resolves with the response text, throws AwsCallError on a non-2xx answer. */
export async function signedPost(
  endpoint: string,
  options: { service: string; region?: string; credentials: AwsCredentials; headers: Record<string, string>; body: string; what: string },
): Promise<string> {
  const url = new URL(endpoint);
  const signer = new SignatureV4({ service: options.service, region: options.region ?? "us-east-1", credentials: options.credentials, sha256: Sha256 });
  const signed = await signer.sign({
    method: "POST",
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port === "" ? undefined : Number(url.port),
    path: "/",
    query: {},
    headers: { host: url.host, ...options.headers },
    body: options.body,
  });
  const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== "host"));
  const res = await fetch(new URL("/", endpoint), { method: "POST", headers, body: options.body });
  const text = await res.text();
  if (!res.ok) throw new AwsCallError(res.status, text, options.what);
  return text;
}

const QUERY_VERSIONS: Record<string, string> = { iam: "2010-05-08", sts: "2011-06-15" };

/** A query-protocol action (IAM, STS); resolves with the XML answer. */
export async function awsQuery(endpoint: string, service: "iam" | "sts", action: string, params: Record<string, string>, credentials: AwsCredentials): Promise<string> {
  const body = new URLSearchParams({ Action: action, Version: QUERY_VERSIONS[service]!, ...params }).toString();
  return await signedPost(endpoint, {
    service,
    credentials,
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body,
    what: `${service}:${action}`,
  });
}

/** A JSON-protocol action (KMS: target prefix TrentService); resolves with the parsed answer. */
export async function awsJson(endpoint: string, service: "kms", target: string, input: object, credentials: AwsCredentials): Promise<Record<string, unknown>> {
  const text = await signedPost(endpoint, {
    service,
    credentials,
    headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": target },
    body: JSON.stringify(input),
    what: `${service}:${target}`,
  });
  return JSON.parse(text) as Record<string, unknown>;
}

/** The text of the first <tag> in an XML answer; throws naming the tag when it is missing. */
export function xmlText(xml: string, tag: string): string {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  if (!m) throw new Error(`no <${tag}> in: ${xml.slice(0, 500)}`);
  return m[1]!.replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'");
}

/** Makes moto let the next `count` actions through without checking credentials (moto's /moto-api/reset-auth). */
export async function motoAllowUnauthenticated(endpoint: string, count: number): Promise<void> {
  const res = await fetch(new URL("/moto-api/reset-auth", endpoint), { method: "POST", body: String(count) });
  if (!res.ok) throw new Error(`moto reset-auth failed: HTTP ${res.status}: ${await res.text()}`);
}
