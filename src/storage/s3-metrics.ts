import type { S3Client } from "@aws-sdk/client-s3";
import type { S3OperationSink } from "../observability/sinks.js";

/**
 * Times every command the client sends (PutObject, UploadPart, UploadPartCopy, GetObject...),
 * those of multipart uploads included. At the initialize step one observation spans all of a
 * command's retries; it ends when the response headers have been read, so a GetObject's time does
 * not include streaming its body.
 */
export function instrumentS3Client(client: S3Client, sink: S3OperationSink): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = (context.commandName ?? "Unknown").replace(/Command$/, "");
      const started = performance.now();
      try {
        const result = await next(args);
        sink.s3Operation(operation, (performance.now() - started) / 1000);
        return result;
      } catch (err) {
        sink.s3Operation(operation, (performance.now() - started) / 1000, errorCode(err));
        throw err;
      }
    },
    { step: "initialize", name: "filesS3Metrics", priority: "high" },
  );
}

/** The S3 error code (NoSuchKey, SlowDown...) or a network error's (ECONNREFUSED...), kept to a safe label value. */
function errorCode(err: unknown): string {
  const e = err as { Code?: unknown; code?: unknown; name?: unknown } | undefined;
  const raw = [e?.Code, e?.code, e?.name].find((v): v is string => typeof v === "string" && v !== "") ?? "Unknown";
  return raw.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64);
}
