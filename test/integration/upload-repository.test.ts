import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { openMetadata, type MetadataStoreOptions } from "../../src/metadata/open.js";
import { partRecord, uploadRecord, uploadRepositoryContract } from "../contract/upload-repository.contract.js";
import { createTestDatabase, tempDir } from "../support/env.js";

async function sqliteOptions(label: string): Promise<MetadataStoreOptions> {
  return { type: "sqlite", dbPath: path.join(await tempDir(label), "files.db") };
}

async function pgOptions(label: string): Promise<MetadataStoreOptions> {
  return { type: "postgres", url: await createTestDatabase(label) };
}

const backends = [
  ["SQLite", sqliteOptions],
  ["PostgreSQL", pgOptions],
] as const;

for (const [name, options] of backends) {
  uploadRepositoryContract(name, async () => {
    const { files, uploads } = await openMetadata(await options(`uploads contract ${name}`));
    return { uploads, close: () => files.close() };
  });

  describe(`upload tables on ${name}`, () => {
    it("keep uploads and parts across a reopen", async () => {
      const opts = await options(`uploads restart ${name}`);
      const upload = uploadRecord({ bytes: 6 * 1024 ** 3, fileExpiresAfterSeconds: 86_400 });
      const part = partRecord(upload.id, { bytes: 3 * 1024 ** 3 });

      const first = await openMetadata(opts);
      await first.uploads.insertUpload(upload);
      await first.uploads.insertPart(part);
      expect(await first.uploads.transition(upload.id, "pending", "completing")).toBe(true);
      await first.files.close();

      const second = await openMetadata(opts); // migrations already applied
      try {
        expect(await second.uploads.findUpload(upload.id)).toEqual({ ...upload, status: "completing" });
        expect(await second.uploads.listParts(upload.id)).toEqual([part]);
      } finally {
        await second.files.close();
      }
    });
  });
}

describe("upload reaper claims on one PostgreSQL database from two repositories (two ORMs)", () => {
  it("split the uploads to reap between concurrent claimers", async () => {
    const opts = await pgOptions("upload claims two orms");
    const [a, b] = [await openMetadata(opts), await openMetadata(opts)];
    try {
      const T = 1_700_000_000;
      const uploads = Array.from({ length: 60 }, (_, i) => uploadRecord({ expiresAt: T - 100 + (i % 9) }));
      for (const u of uploads) await a.uploads.insertUpload(u);
      const ended = uploadRecord({ status: "cancelled", expiresAt: T + 50 });
      await a.uploads.insertUpload(ended);
      await a.uploads.insertPart(partRecord(ended.id));
      const claimed: string[] = [];
      for (let wave = 0; wave < 10; wave++) {
        const batches = await Promise.all([a.uploads.claimUploadsToReap(T, 5, T + 300), b.uploads.claimUploadsToReap(T, 5, T + 300)]);
        claimed.push(...batches.flat().map((u) => u.id));
      }
      expect(new Set(claimed).size).toBe(claimed.length);
      expect([...claimed].sort()).toEqual([...uploads, ended].map((u) => u.id).sort());
    } finally {
      await a.files.close();
      await b.files.close();
    }
  });
});
