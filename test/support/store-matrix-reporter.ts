/**
 * Prints, at the end of a run, the store × feature matrix of the tests that run on both moto and
 * s3proxy: each cell is "pass", "degraded" (some tests skipped for a documented difference of that
 * store), "fail", or "-" when the file did not run on that store.
 */
import { basename } from "node:path";
import type { Reporter, TestModule } from "vitest/node";

interface Cell {
  passed: number;
  failed: number;
  skipped: number;
}

const STORE_OF_PROJECT: Record<string, string> = { integration: "moto", s3proxy: "s3proxy" };

export default class StoreMatrixReporter implements Reporter {
  constructor(private readonly files: readonly string[]) {}

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const wanted = new Set(this.files.map((f) => basename(f)));
    const cells = new Map<string, Map<string, Cell>>();
    for (const module of modules) {
      const file = basename(module.moduleId);
      let store = STORE_OF_PROJECT[module.project.name];
      if (!store || !wanted.has(file)) continue;
      if (store === "moto" && process.env.S3_TEST_ENDPOINT?.trim()) store = "S3_TEST_ENDPOINT";
      const row = cells.get(file) ?? new Map<string, Cell>();
      cells.set(file, row);
      const cell = row.get(store) ?? { passed: 0, failed: 0, skipped: 0 };
      row.set(store, cell);
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") cell.passed++;
        else if (state === "failed") cell.failed++;
        else cell.skipped++;
      }
    }
    const stores = [...new Set([...cells.values()].flatMap((row) => [...row.keys()]))].sort();
    if (stores.length < 2) return; // one store only: nothing to compare
    const describe = (cell: Cell | undefined) => {
      if (!cell) return "-";
      if (cell.failed > 0) return `fail (${cell.failed} of ${cell.passed + cell.failed})`;
      if (cell.passed === 0) return "-";
      return cell.skipped > 0 ? `degraded (${cell.passed} pass, ${cell.skipped} skipped)` : `pass (${cell.passed})`;
    };
    const rows = [...cells.keys()].sort().map((file) => [file.replace(/\.test\.ts$/, ""), ...stores.map((s) => describe(cells.get(file)!.get(s)))]);
    const header = ["feature (test file)", ...stores];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cols: string[]) => cols.map((c, i) => c.padEnd(widths[i]!)).join("  ");
    process.stdout.write(`\nS3 store matrix\n${line(header)}\n${line(widths.map((w) => "-".repeat(w)))}\n${rows.map(line).join("\n")}\n\n`);
  }
}
