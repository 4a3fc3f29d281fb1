import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Every temp file and directory of a test run (config files, databases, server directories) goes
// under one directory that is removed when the run ends, so runs leave nothing behind in /tmp.
// Workers and the servers they start inherit TMPDIR, and os.tmpdir() reads it on every call.
if (!process.env.FILES_TEST_RUN_TMP) {
  const runTmp = mkdtempSync(join(tmpdir(), "files-test-run-"));
  process.env.FILES_TEST_RUN_TMP = runTmp;
  process.env.TMPDIR = runTmp;
  process.once("exit", () => rmSync(runTmp, { recursive: true, force: true }));
}

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    // Two cores: keep concurrency modest so streaming tests stay stable.
    maxWorkers: 2,
    projects: [
      // Pure and in-memory tests: no services needed.
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      // Real moto, PostgreSQL, SQLite and server processes, started once by the global setup.
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
