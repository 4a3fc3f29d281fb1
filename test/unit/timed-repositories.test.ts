import { describe, expect, it } from "vitest";
import type { FileRepository } from "../../src/files/ports.js";
import type { MetadataQuerySink, Outcome } from "../../src/observability/sinks.js";
import { timedFileRepository } from "../../src/observability/timed-repositories.js";

class Recorder implements MetadataQuerySink {
  readonly calls: { operation: string; outcome: Outcome; seconds: number }[] = [];
  metadataQuery(operation: string, seconds: number, outcome: Outcome): void {
    this.calls.push({ operation, outcome, seconds });
  }
}

/** A fake whose methods use a private field, as the MikroORM repositories do. */
class FakeRepository {
  #rows = new Map<string, string>([["file-1", "one"]]);
  async findById(id: string): Promise<string | undefined> {
    return this.#rows.get(id);
  }
  async delete(): Promise<boolean> {
    throw new Error("database gone");
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

describe("timed repositories", () => {
  it("reports each call's operation and outcome, and passes results and errors through", async () => {
    const sink = new Recorder();
    const repo = timedFileRepository(new FakeRepository() as unknown as FileRepository, sink);
    expect(await repo.findById("file-1", 0)).toBe("one");
    await expect(repo.delete("file-1", 0)).rejects.toThrow("database gone");
    expect(sink.calls.map(({ operation, outcome }) => ({ operation, outcome }))).toEqual([
      { operation: "files.findById", outcome: "ok" },
      { operation: "files.delete", outcome: "error" },
    ]);
    for (const call of sink.calls) expect(call.seconds).toBeGreaterThanOrEqual(0);
  });

  it("leaves ping and close untimed", async () => {
    const sink = new Recorder();
    const repo = timedFileRepository(new FakeRepository() as unknown as FileRepository, sink);
    await repo.ping();
    await repo.close();
    expect(sink.calls).toEqual([]);
  });
});
