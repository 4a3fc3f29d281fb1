import type { FileRepository, UploadRepository } from "../files/ports.js";
import type { MetadataQuerySink } from "./sinks.js";

/** Readiness probes call ping every few seconds and would drown the query latencies; close is no query. */
const UNTIMED = new Set<PropertyKey>(["ping", "close"]);

/**
 * The files repository with each call timed as "files.<method>" (files.insert, files.findById...).
 * A proxy rather than a class listing the methods, so a method added to the port is timed too.
 */
export function timedFileRepository(inner: FileRepository, sink: MetadataQuerySink): FileRepository {
  return timedRepository(inner, "files", sink);
}

/** The uploads repository with each call timed as "uploads.<method>" (uploads.transition...). */
export function timedUploadRepository(inner: UploadRepository, sink: MetadataQuerySink): UploadRepository {
  return timedRepository(inner, "uploads", sink);
}

function timedRepository<T extends object>(inner: T, prefix: string, sink: MetadataQuerySink): T {
  return new Proxy(inner, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop); // the real object as `this`, so private fields work
      if (typeof value !== "function" || UNTIMED.has(prop) || typeof prop !== "string") return value;
      const operation = `${prefix}.${prop}`;
      return (...args: unknown[]) => {
        const started = performance.now();
        const report = (outcome: "ok" | "error") => sink.metadataQuery(operation, (performance.now() - started) / 1000, outcome);
        let result: unknown;
        try {
          result = Reflect.apply(value, target, args);
        } catch (err) {
          report("error");
          throw err;
        }
        if (!(result instanceof Promise)) {
          report("ok");
          return result;
        }
        return result.then(
          (v: unknown) => {
            report("ok");
            return v;
          },
          (err: unknown) => {
            report("error");
            throw err;
          },
        );
      };
    },
  });
}
