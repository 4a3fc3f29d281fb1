/**
 * The behaviour every FileRepository must have, run against each implementation.
 * `open` must return an empty repository; every test deletes the rows it inserted.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newFileId } from "../../src/files/ids.js";
import type { FileRecord, FileRepository, ListOrder, ListQuery } from "../../src/files/ports.js";
import type { Purpose } from "../../src/files/purposes.js";
import { FILE_RESOURCE_TYPE } from "../../src/files/access-control.js";
import { LLAMA_STACK_DEFAULT_POLICY, OWNER_ONLY_POLICY, parseAccessPolicy, type User } from "../../src/files/access-policy.js";
import { compileRowPredicate, rowMatches } from "../../src/files/row-predicate.js";

const T = 1_700_000_000; // a fixed "now": expiry is judged against the caller's clock, not the wall clock
const GiB = 1024 ** 3;

export function record(overrides: Partial<FileRecord> = {}): FileRecord {
  const id = overrides.id ?? newFileId();
  return {
    id,
    filename: "data.jsonl",
    purpose: "batch",
    bytes: 1234,
    createdAt: T,
    expiresAt: null,
    mimeType: "application/jsonl",
    sha256: "a".repeat(64),
    storageKey: `files/${id}`,
    status: "processed",
    ownerPrincipal: null,
    ...overrides,
  };
}

/** The order list() must produce: (createdAt, id), ids compared by code unit. */
function sorted(records: FileRecord[], order: ListOrder): string[] {
  const sign = order === "asc" ? 1 : -1;
  return [...records]
    .sort((a, b) => sign * (a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)))
    .map((r) => r.id);
}

export function fileRepositoryContract(name: string, open: () => Promise<FileRepository>): void {
  describe(`FileRepository contract: ${name}`, () => {
    let repo: FileRepository;
    const inserted = new Set<string>();

    beforeAll(async () => {
      repo = await open();
    });
    afterEach(async () => {
      for (const id of inserted) await repo.delete(id, T);
      inserted.clear();
    });
    afterAll(async () => {
      await repo?.close();
    });

    async function put(...records: FileRecord[]): Promise<void> {
      for (const r of records) {
        inserted.add(r.id);
        await repo.insert(r);
      }
    }

    /** Walks every page with `limit`, feeding each page's last row back as the cursor. */
    async function walk(query: Omit<ListQuery, "after">): Promise<string[]> {
      const ids: string[] = [];
      let after: ListQuery["after"];
      for (let pages = 0; pages < 1000; pages++) {
        const page = await repo.list({ ...query, after });
        expect(page.length).toBeLessThanOrEqual(query.limit);
        ids.push(...page.map((r) => r.id));
        const last = page.at(-1);
        if (!last || page.length < query.limit) return ids;
        after = { createdAt: last.createdAt, id: last.id };
      }
      throw new Error("list() never ran out of pages");
    }

    it("round-trips every field, including sizes above 2^32 and a null expiry", async () => {
      const big = record({ bytes: 8 * GiB + 123, expiresAt: null, ownerPrincipal: null });
      const other = record({
        filename: "résumé 📄 \"quoted\" 'x'.pdf",
        purpose: "user_data",
        bytes: 0,
        createdAt: T - 5,
        expiresAt: T + 2_592_000,
        mimeType: "application/pdf",
        sha256: "0123456789abcdef".repeat(4),
        storageKey: "tenant/a/b/c.bin",
        ownerPrincipal: "user:alice",
      });
      await put(big, other);
      expect(await repo.findById(big.id, T)).toEqual(big);
      expect(await repo.findById(other.id, T)).toEqual(other);
      const listed = await repo.list({ limit: 10, order: "desc", now: T });
      expect(listed).toEqual([big, other]);
      expect(typeof listed[0]?.bytes).toBe("number");
    });

    it("returns undefined for an unknown id", async () => {
      await put(record());
      expect(await repo.findById(newFileId(), T)).toBeUndefined();
    });

    it("hides rows whose expiresAt <= now from findById and list", async () => {
      const past = record({ expiresAt: T - 1 });
      const exactlyNow = record({ expiresAt: T });
      const future = record({ expiresAt: T + 1 });
      const never = record({ expiresAt: null });
      await put(past, exactlyNow, future, never);
      expect(await repo.findById(past.id, T)).toBeUndefined();
      expect(await repo.findById(exactlyNow.id, T)).toBeUndefined();
      expect(await repo.findById(future.id, T)).toEqual(future);
      expect(await repo.findById(never.id, T)).toEqual(never);
      // Judged against the caller's `now`: earlier, the same row is still there.
      expect(await repo.findById(exactlyNow.id, T - 1)).toEqual(exactlyNow);
      for (const order of ["asc", "desc"] as const) {
        const ids = (await repo.list({ limit: 100, order, now: T })).map((r) => r.id);
        expect(ids).toEqual(sorted([future, never], order));
        expect(await walk({ limit: 1, order, now: T })).toEqual(sorted([future, never], order));
      }
    });

    it("pages by (createdAt, id) in both orders when many files share a second", async () => {
      const files = [
        ...Array.from({ length: 27 }, () => record({ createdAt: T })),
        ...Array.from({ length: 5 }, () => record({ createdAt: T - 1 })),
        ...Array.from({ length: 4 }, () => record({ createdAt: T + 1 })),
        ...Array.from({ length: 2 }, () => record({ createdAt: T - 3600 })),
      ];
      await put(...files);
      for (const order of ["asc", "desc"] as const) {
        const expected = sorted(files, order);
        expect((await repo.list({ limit: 1000, order, now: T })).map((r) => r.id)).toEqual(expected);
        for (const limit of [1, 2, 3, 7, 27, 38]) {
          const ids = await walk({ limit, order, now: T });
          expect(ids, `order=${order} limit=${limit}`).toEqual(expected);
          expect(new Set(ids).size).toBe(files.length);
        }
      }
    });

    it("starts strictly after a cursor position, even one that names no row", async () => {
      const ids = ["file-" + "1".repeat(32), "file-" + "5".repeat(32), "file-" + "9".repeat(32)];
      const rows = [
        ...ids.map((id) => record({ id, createdAt: T })),
        record({ createdAt: T - 1 }),
        record({ createdAt: T + 1 }),
      ];
      await put(...rows);
      const cursor = { createdAt: T, id: "file-" + "5".repeat(32) };
      const gap = { createdAt: T, id: "file-" + "3".repeat(32) }; // between two rows, matches none
      const after = async (a: ListQuery["after"], order: ListOrder) =>
        (await repo.list({ after: a, limit: 100, order, now: T })).map((r) => r.id);
      expect(await after(cursor, "desc")).toEqual(sorted(rows, "desc").slice(sorted(rows, "desc").indexOf(cursor.id) + 1));
      expect(await after(cursor, "asc")).toEqual(sorted(rows, "asc").slice(sorted(rows, "asc").indexOf(cursor.id) + 1));
      expect(await after(gap, "desc")).toEqual([ids[0], rows[3]?.id]);
      expect(await after(gap, "asc")).toEqual([ids[1], ids[2], rows[4]?.id]);
    });

    it("combines the purpose filter with paging", async () => {
      const purposes: Purpose[] = ["batch", "assistants", "fine-tune"];
      const files = Array.from({ length: 36 }, (_, i) =>
        record({ purpose: purposes[i % 3], createdAt: T + (i % 4 === 0 ? 1 : 0) - (i % 5 === 0 ? 1 : 0) }),
      );
      const expiredBatch = record({ purpose: "batch", expiresAt: T });
      await put(...files, expiredBatch);
      for (const purpose of ["batch", "assistants"] as const) {
        const mine = files.filter((f) => f.purpose === purpose);
        for (const order of ["asc", "desc"] as const) {
          for (const limit of [1, 3, 5]) {
            expect(await walk({ limit, order, purpose, now: T }), `${purpose} ${order} ${limit}`).toEqual(
              sorted(mine, order),
            );
          }
        }
      }
      expect(await repo.list({ limit: 10, order: "asc", purpose: "vision", now: T })).toEqual([]);
    });

    it("deletes a row once: true, then false", async () => {
      const r = record();
      await put(r);
      expect(await repo.delete(r.id, T)).toBe(true);
      expect(await repo.findById(r.id, T)).toBeUndefined();
      expect(await repo.delete(r.id, T)).toBe(false);
      expect(await repo.delete(newFileId(), T)).toBe(false);
    });

    it("knows the list position of a live, an expired and a recently deleted file, for `after` cursors", async () => {
      const live = record({ createdAt: T - 50 });
      const expired = record({ createdAt: T - 40, expiresAt: T - 1 });
      const gone = record({ createdAt: T - 30 });
      await put(live, expired, gone);
      expect(await repo.delete(gone.id, T)).toBe(true);
      expect(await repo.position(live.id)).toEqual({ createdAt: T - 50, id: live.id, ownerPrincipal: null });
      expect(await repo.position(expired.id)).toEqual({ createdAt: T - 40, id: expired.id, ownerPrincipal: null });
      expect(await repo.position(gone.id)).toEqual({ createdAt: T - 30, id: gone.id, ownerPrincipal: null });
      expect(await repo.position(newFileId())).toBeUndefined();
      // Paging on from the deleted file's position neither skips nor repeats a neighbour.
      expect((await repo.list({ after: (await repo.position(gone.id))!, limit: 10, order: "desc", now: T })).map((r) => r.id)).toEqual([live.id]);
    });

    it("lists one owner's rows, paging within them, and keeps each position's owner, deleted ones included", async () => {
      const files = Array.from({ length: 20 }, (_, i) =>
        record({ ownerPrincipal: i % 3 === 0 ? "alice" : i % 3 === 1 ? "bob" : null, createdAt: T - (i % 4), purpose: i % 2 ? "batch" : "assistants" }),
      );
      await put(...files);
      for (const owner of ["alice", "bob"]) {
        const mine = files.filter((f) => f.ownerPrincipal === owner);
        for (const order of ["asc", "desc"] as const) {
          expect(await walk({ limit: 2, order, now: T, owner }), `${owner} ${order}`).toEqual(sorted(mine, order));
          expect(await walk({ limit: 2, order, now: T, owner, purpose: "batch" })).toEqual(sorted(mine.filter((f) => f.purpose === "batch"), order));
        }
      }
      expect(await repo.list({ limit: 100, order: "asc", now: T, owner: "carol" })).toEqual([]);
      const alices = files[0]!;
      expect((await repo.position(alices.id))?.ownerPrincipal).toBe("alice");
      expect(await repo.delete(alices.id, T)).toBe(true);
      expect(await repo.position(alices.id)).toEqual({ createdAt: alices.createdAt, id: alices.id, ownerPrincipal: "alice" });
    });

    it("pages exactly the rows a sharing policy admits: owners, unowned rows, shared values, forbid rules, expiry and purpose", async () => {
      const owners = ["alice", "bob", "carol", "dave", null, ""] as const;
      const teams = [["ml"], ["ops"], ["ml", "ops"], [], ["x\"y"]];
      const files = Array.from({ length: 90 }, (_, i) => {
        const owner = owners[i % owners.length]!;
        const withAttributes = owner && i % 4 !== 3;
        return record({
          ownerPrincipal: owner,
          createdAt: T - (i % 7),
          purpose: i % 3 ? "batch" : "assistants",
          expiresAt: i % 17 === 0 ? T : null,
          ...(withAttributes ? { accessAttributes: { roles: [owner], teams: teams[i % teams.length]! } } : {}),
        });
      });
      await put(...files);
      const users: User[] = [
        { principal: "alice", attributes: { roles: ["alice"], teams: ["ml"] } },
        { principal: "erin", attributes: { teams: ["ops", "ml"] } },
        { principal: "bob", attributes: null },
        { principal: "zed", attributes: { teams: ['x"y'] } },
        // More shared values than the list query walks as separate index ranges: one filtered scan.
        { principal: "yan", attributes: { teams: ["ops", ...Array.from({ length: 20 }, (_, i) => `t${i}`)], roles: ["bob"] } },
      ];
      const forbidOps = parseAccessPolicy([
        { forbid: { actions: ["read"] }, when: "user with ops in teams", description: "no ops" },
        { permit: { actions: ["read"] }, when: "user in owners teams" },
        { permit: { actions: ["read"] }, when: "user is owner" },
      ]);
      const unlessOwner = parseAccessPolicy([{ permit: { actions: ["read"] }, unless: "user is owner" }]);
      for (const policy of [LLAMA_STACK_DEFAULT_POLICY, OWNER_ONLY_POLICY, forbidOps, unlessOwner]) {
        for (const user of users) {
          const visible = compileRowPredicate(policy, "read", FILE_RESOURCE_TYPE, user);
          for (const purpose of [undefined, "batch"] as const) {
            const want = files.filter((f) => f.expiresAt === null && (!purpose || f.purpose === purpose) && rowMatches(visible, f));
            for (const order of ["asc", "desc"] as const) {
              const label = `${JSON.stringify(policy).slice(0, 60)} ${user.principal} ${purpose} ${order}`;
              expect(await walk({ limit: 4, order, now: T, visible, ...(purpose ? { purpose } : {}) }), label).toEqual(sorted(want, order));
            }
          }
        }
      }
    });

    it("rejects a second insert with the same id and keeps the first", async () => {
      const first = record({ filename: "first.txt" });
      await put(first);
      await expect(repo.insert({ ...first, filename: "second.txt" })).rejects.toThrow();
      expect(await repo.findById(first.id, T)).toEqual(first);
    });

    it("answers ping", async () => {
      await expect(repo.ping()).resolves.toBeUndefined();
    });

    describe("listStorageKeys (for consistency checks)", () => {
      /** Every row through listStorageKeys, `limit` at a time. */
      async function walkKeys(limit: number): Promise<{ id: string; storageKey: string }[]> {
        const rows: { id: string; storageKey: string }[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 1000; pages++) {
          const page = await repo.listStorageKeys(after, limit);
          expect(page.length).toBeLessThanOrEqual(limit);
          rows.push(...page);
          if (page.length < limit) return rows;
          after = page.at(-1)!.id;
        }
        throw new Error("listStorageKeys() never ran out of pages");
      }

      it("walks every row by id, expired ones included, in keyset pages", async () => {
        const rows = Array.from({ length: 23 }, (_, i) =>
          record({
            createdAt: T - (i % 4),
            expiresAt: i % 3 === 0 ? T - 100 : i % 3 === 1 ? null : T + 100,
            storageKey: i % 5 === 0 ? `tenant/${i}/x.bin` : `files/${i}`,
          }),
        );
        await put(...rows);
        const expected = rows
          .map((r) => ({ id: r.id, storageKey: r.storageKey }))
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        for (const limit of [1, 4, 23, 1000]) expect(await walkKeys(limit), `limit=${limit}`).toEqual(expected);
        expect(await repo.listStorageKeys(undefined, 0)).toEqual([]);
        // Strictly after a cursor, even one that names no row.
        const middle = expected[11]!.id;
        expect(await repo.listStorageKeys(middle, 100)).toEqual(expected.slice(12));
        expect(await repo.listStorageKeys(`${middle}0`, 100)).toEqual(expected.slice(12));
        expect(await repo.listStorageKeys(expected.at(-1)!.id, 100)).toEqual([]);
      });

      it("no longer lists a deleted row", async () => {
        const kept = record();
        const gone = record();
        await put(kept, gone);
        await repo.delete(gone.id, T);
        expect(await walkKeys(10)).toEqual([{ id: kept.id, storageKey: kept.storageKey }]);
      });
    });

    describe("claimExpired (the reaper's claims)", () => {
      const LEASE = 300;

      it("claims expired rows only, oldest expiry first, up to the limit, and returns whole records", async () => {
        const oldest = record({ expiresAt: T - 300, purpose: "assistants", bytes: 5 * GiB, ownerPrincipal: "user:carol" });
        const older = record({ expiresAt: T - 200 });
        const exactlyNow = record({ expiresAt: T });
        const future = record({ expiresAt: T + 1 });
        const never = record({ expiresAt: null });
        await put(future, exactlyNow, never, older, oldest);
        expect(await repo.claimExpired(T, 2, T + LEASE)).toEqual([oldest, older]);
        expect(await repo.claimExpired(T, 10, T + LEASE)).toEqual([exactlyNow]);
        expect(await repo.claimExpired(T, 10, T + LEASE)).toEqual([]);
        expect(await repo.claimExpired(T, 0, T + LEASE)).toEqual([]);
        // Unexpired rows are never claimed, and a claim changes nothing a client can see.
        expect(await repo.findById(future.id, T)).toEqual(future);
        expect(await repo.findById(never.id, T)).toEqual(never);
        expect(await repo.position(oldest.id)).toEqual({ createdAt: oldest.createdAt, id: oldest.id, ownerPrincipal: oldest.ownerPrincipal });
      });

      it("holds a claim until it lapses, then lets the row be claimed again", async () => {
        const a = record({ expiresAt: T - 10 });
        const b = record({ expiresAt: T - 5 });
        await put(a, b);
        expect((await repo.claimExpired(T, 1, T + LEASE)).map((r) => r.id)).toEqual([a.id]);
        // While a's claim holds, another claimer gets only b.
        expect((await repo.claimExpired(T + 1, 10, T + 1 + LEASE)).map((r) => r.id)).toEqual([b.id]);
        expect(await repo.claimExpired(T + LEASE, 10, T + 2 * LEASE)).toEqual([]); // not lapsed yet at its last second
        // The first claimer died: once its lease is over, a is claimable again (b's claim still holds).
        expect((await repo.claimExpired(T + LEASE + 1, 10, T + 2 * LEASE)).map((r) => r.id)).toEqual([a.id]);
      });

      it("gives each row to one of many concurrent claimers", async () => {
        const rows = Array.from({ length: 30 }, (_, i) => record({ expiresAt: T - 100 + (i % 7) }));
        await put(...rows);
        const batches = await Promise.all(Array.from({ length: 6 }, () => repo.claimExpired(T, 7, T + LEASE)));
        const ids = batches.flatMap((b) => b.map((r) => r.id));
        for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(7);
        expect(new Set(ids).size).toBe(ids.length);
        expect([...ids].sort()).toEqual(rows.map((r) => r.id).sort());
      });

      it("a claimed row deleted with delete() is gone, and keeps its list position for cursors", async () => {
        const r = record({ createdAt: T - 60, expiresAt: T - 1 });
        await put(r);
        const [claimed] = await repo.claimExpired(T, 10, T + LEASE);
        expect(claimed).toEqual(r);
        expect(await repo.delete(r.id, T)).toBe(true);
        expect(await repo.claimExpired(T + 10 * LEASE, 10, T + 11 * LEASE)).toEqual([]);
        expect(await repo.position(r.id)).toEqual({ createdAt: T - 60, id: r.id, ownerPrincipal: r.ownerPrincipal });
      });
    });
  });
}
