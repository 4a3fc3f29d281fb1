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

    it("store access_attributes as JSON once (uploads and deleted positions), and read rows earlier versions encoded twice", async () => {
      const opts = await options(`uploads attributes ${name}`);
      const { files, uploads } = await openMetadata(opts);
      const connection = (files as unknown as { orm: { em: { getConnection(): { execute<T>(sql: string, params?: unknown[]): Promise<T> } } } }).orm.em.getConnection();
      const text = async (table: string, id: string) => {
        const column = name === "PostgreSQL" ? "access_attributes::text" : "access_attributes"; // SQLite stores text as it is
        const rows = await connection.execute<{ a: string | null }[]>(`select ${column} as a from ${table} where id = ?`, [id]);
        return rows[0]?.a;
      };
      try {
        const upload = uploadRecord({ ownerPrincipal: "ann", accessAttributes: { teams: ["ml"] } });
        await uploads.insertUpload(upload);
        expect(JSON.parse((await text("openai_uploads", upload.id))!)).toEqual({ teams: ["ml"] });
        expect((await uploads.findUpload(upload.id))?.accessAttributes).toEqual({ teams: ["ml"] });

        const file = { ...recordFor("ann"), accessAttributes: { teams: ["ops"] } };
        await files.insert(file);
        expect(await files.delete(file.id, 1_700_000_100)).toBe(true);
        expect(JSON.parse((await text("openai_files_deleted", file.id))!)).toEqual({ teams: ["ops"] });
        expect((await files.position(file.id))?.accessAttributes).toEqual({ teams: ["ops"] });

        // As an earlier version left them: the JSON text as a JSON string.
        const twice = JSON.stringify(JSON.stringify({ roles: ["old"] }));
        await connection.execute(`update openai_uploads set access_attributes = ? where id = ?`, [twice, upload.id]);
        await connection.execute(`update openai_files_deleted set access_attributes = ? where id = ?`, [twice, file.id]);
        expect((await uploads.findUpload(upload.id))?.accessAttributes).toEqual({ roles: ["old"] });
        expect((await files.position(file.id))?.accessAttributes).toEqual({ roles: ["old"] });
      } finally {
        await files.close();
      }
    });
  });
}

function recordFor(owner: string) {
  const id = `file-${Math.random().toString(16).slice(2).padEnd(32, "0").slice(0, 32)}`;
  return {
    id, filename: "a.txt", purpose: "assistants" as const, bytes: 1, createdAt: 1_700_000_000, expiresAt: null, mimeType: "text/plain",
    sha256: "", storageKey: id, status: "processed" as const, ownerPrincipal: owner,
  };
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
