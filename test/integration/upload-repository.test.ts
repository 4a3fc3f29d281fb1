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
