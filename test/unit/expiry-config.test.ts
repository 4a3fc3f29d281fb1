import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/load-config.js";
import { defaultTtlLookup } from "../../src/files/default-ttl.js";
import { FilesService } from "../../src/files/files-service.js";
import type { Clock } from "../../src/files/ports.js";
import { UploadsService } from "../../src/files/uploads-service.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";
import { MemoryObjectStore } from "../support/memory-object-store.js";
import { MemoryUploadRepository } from "../support/memory-upload-repository.js";
import { bodyOf } from "../support/test-helpers.js";

function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const path = join(mkdtempSync(join(tmpdir(), "files-config-")), "config.yaml");
  writeFileSync(path, yaml);
  return loadConfig({ configPath: path, env });
}

const s3 = (extra: string) => load(`provider_type: remote::s3\nconfig:\n  bucket_name: my-bucket\n${extra}`);
const localfs = (extra: string) => load(`provider_type: inline::localfs\nconfig:\n  storage_dir: /tmp/files\n${extra}`);

function configError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

const BUILT_IN = { assistants: null, batch: 2_592_000, "fine-tune": null, vision: null, user_data: null, evals: null };

describe("default_ttl_seconds and reaper in the provider config", () => {
  it("defaults: batch 30 days, every other purpose never; a reaper every 60 s taking 100", () => {
    for (const config of [s3(""), localfs(""), loadConfig({ env: {} })]) {
      expect(config.expiry).toEqual({ defaultTtlSeconds: BUILT_IN, reaper: { intervalSeconds: 60, batchSize: 100 } });
    }
  });

  it("takes seconds or 'none' per purpose, on both provider types; unnamed purposes keep their default", () => {
    const extra = "  default_ttl_seconds:\n    assistants: 7200\n    batch: none\n    user_data: '86400'\n  reaper:\n    interval_seconds: 5\n    batch_size: 7\n";
    for (const config of [s3(extra), localfs(extra)]) {
      expect(config.expiry).toEqual({
        defaultTtlSeconds: { ...BUILT_IN, assistants: 7200, batch: null, user_data: 86_400 },
        reaper: { intervalSeconds: 5, batchSize: 7 },
      });
    }
  });

  it("interval_seconds 0 turns the reaper off", () => {
    expect(s3("  reaper:\n    interval_seconds: 0\n").expiry.reaper).toEqual({ intervalSeconds: 0, batchSize: 100 });
  });

  it("a localfs config naming only the shared keys is still localfs", () => {
    const config = load("config:\n  default_ttl_seconds:\n    batch: none\n  reaper:\n    interval_seconds: 0\n");
    expect(config.storage.type).toBe("inline::localfs");
    expect(config.expiry.defaultTtlSeconds.batch).toBeNull();
  });

  it("takes values from the environment", () => {
    const config = load("provider_type: remote::s3\nconfig:\n  bucket_name: b-1\n  default_ttl_seconds:\n    batch: ${env.BATCH_TTL:=none}\n    vision: ${env.VISION_TTL}\n", { VISION_TTL: "3600" });
    expect(config.expiry.defaultTtlSeconds).toMatchObject({ batch: null, vision: 3600 });
  });

  it("names an unknown purpose, and lists the real ones", () => {
    const message = configError(() => s3("  default_ttl_seconds:\n    batch: none\n    fine_tune: 3600\n"));
    expect(message).toContain("config.default_ttl_seconds");
    expect(message).toContain("'fine_tune'");
    expect(message).toContain("fine-tune");
    expect(configError(() => localfs("  default_ttl_seconds:\n    batch_output: 60\n"))).toContain("'batch_output'");
  });

  it.each([
    ["  default_ttl_seconds:\n    batch: never\n", "config.default_ttl_seconds.batch"],
    ["  default_ttl_seconds:\n    batch: 0\n", "config.default_ttl_seconds.batch"],
    ["  default_ttl_seconds:\n    batch: 1.5\n", "config.default_ttl_seconds.batch"],
    ["  default_ttl_seconds: 3600\n", "config.default_ttl_seconds"],
    ["  reaper:\n    interval_seconds: -1\n", "config.reaper.interval_seconds"],
    ["  reaper:\n    batch_size: 0\n", "config.reaper.batch_size"],
    ["  reaper:\n    every: 5\n", "config.reaper"],
  ])("rejects %j naming %s", (extra, field) => {
    expect(configError(() => s3(extra))).toContain(field);
  });
});

describe("FilesService default expiry per purpose", () => {
  const T0 = 1_700_000_000;
  const clock: Clock = { now: () => T0 };

  function services(defaultTtlSeconds?: (purpose: "assistants" | "batch" | "fine-tune" | "vision" | "user_data" | "evals") => number | null) {
    const store = new MemoryObjectStore();
    const files = new FilesService({ store, repository: new MemoryFileRepository(), clock, maxFileBytes: 1000, defaultTtlSeconds });
    const uploads = new UploadsService({ files, store, repository: new MemoryUploadRepository(), clock, maxUploadBytes: 1000, maxPartBytes: 1000 });
    return { files, uploads };
  }

  it("applies the default when the client names no expiry, and the client's expiry otherwise", async () => {
    const { files } = services(defaultTtlLookup({ assistants: 7200, batch: null }));
    const up = (purpose: string, expiresAfterSeconds?: number) => files.upload({ filename: "a", purpose, expiresAfterSeconds }, bodyOf("x"));
    expect((await up("assistants")).expiresAt).toBe(T0 + 7200);
    expect((await up("batch")).expiresAt).toBeNull();
    expect((await up("vision")).expiresAt).toBeNull();
    expect((await up("assistants", 3600)).expiresAt).toBe(T0 + 3600);
    expect((await up("batch", 86_400)).expiresAt).toBe(T0 + 86_400);
  });

  it("the built-in defaults: batch 30 days; without the option, no default at all", async () => {
    const builtIn = services(defaultTtlLookup()).files;
    expect((await builtIn.upload({ filename: "a", purpose: "batch" }, bodyOf("x"))).expiresAt).toBe(T0 + 2_592_000);
    expect((await builtIn.upload({ filename: "a", purpose: "user_data" }, bodyOf("x"))).expiresAt).toBeNull();
    const none = services().files;
    expect((await none.upload({ filename: "a", purpose: "batch" }, bodyOf("x"))).expiresAt).toBeNull();
  });

  it("the file an Upload completes into gets the default too, unless the upload named an expiry", async () => {
    const { uploads } = services(defaultTtlLookup({ assistants: 7200 }));
    for (const [purpose, expiresAfterSeconds, expected] of [
      ["assistants", undefined, T0 + 7200],
      ["batch", undefined, T0 + 2_592_000],
      ["assistants", 3600, T0 + 3600],
      ["user_data", undefined, null],
    ] as const) {
      const created = await uploads.create({ filename: "u", purpose, bytes: 1, expiresAfterSeconds });
      const part = await uploads.addPart(created.upload.id, bodyOf("x"));
      const done = await uploads.complete(created.upload.id, [part.id]);
      expect(done.file?.expiresAt, `${purpose} ${expiresAfterSeconds}`).toBe(expected);
    }
  });
});
