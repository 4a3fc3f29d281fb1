/**
 * The S3 side the bench shares (direct S3 target, bucket set-up and removal): one client
 * configuration, and the service's part size and concurrency (the floor server's too). Kept apart
 * from clients.ts so the floor server loads the AWS SDK alone, not the gRPC clients.
 */
import http from "node:http";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { MiB } from "./payload.js";

export interface S3Target {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Part size and parts in flight: the server's defaults (config part_size_bytes / part_concurrency). */
export const PART_SIZE = 8 * MiB;
export const QUEUE_SIZE = 4;

/** `maxSockets`: connections the client may open (the SDK's default is 50, below the small-file scenario's 64). */
export function s3Client(target: S3Target, maxSockets?: number): S3Client {
  return new S3Client({
    ...(maxSockets !== undefined && { requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets }) } }),
    endpoint: target.endpoint,
    region: target.region,
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    forcePathStyle: true,
    // Plain bodies: no aws-chunked CRC32 trailers (the server does the same for custom endpoints).
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export async function createBucket(target: S3Target): Promise<void> {
  const client = s3Client(target);
  try {
    await client.send(new CreateBucketCommand({ Bucket: target.bucket }));
  } finally {
    client.destroy();
  }
}
