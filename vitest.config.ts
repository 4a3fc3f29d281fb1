import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";
import StoreMatrixReporter from "./test/support/store-matrix-reporter.js";

// Every temp file and directory of a test run (config files, databases, server directories) goes
// under one directory that is removed when the run ends, so runs leave nothing behind in /tmp.
// Workers and the servers they start inherit TMPDIR, and os.tmpdir() reads it on every call.
if (!process.env.FILES_TEST_RUN_TMP) {
  const runTmp = mkdtempSync(join(tmpdir(), "files-test-run-"));
  process.env.FILES_TEST_RUN_TMP = runTmp;
  process.env.TMPDIR = runTmp;
  process.once("exit", () => rmSync(runTmp, { recursive: true, force: true }));
}

/** The tests that run on both moto and s3proxy: the ObjectStore contract and the core end-to-end set. */
const S3PROXY_SET = [
  "test/integration/object-store.test.ts",
  "test/e2e/grpc-roundtrip.test.ts",
  "test/e2e/openai-files.test.ts",
  "test/e2e/openai-uploads.test.ts",
  "test/e2e/grpc-uploads.test.ts",
  "test/e2e/reaper-outage.test.ts",
  "test/e2e/reconcile.test.ts",
  "test/e2e/crash-recovery.test.ts",
  "test/e2e/cancelled-upload.test.ts",
  "test/e2e/s3-capabilities.test.ts",
  "test/e2e/s3-faults.test.ts",
  "test/e2e/faults-disconnect.test.ts",
  "test/e2e/expiry-defaults.test.ts",
  "test/e2e/reaper-replicas.test.ts",
  "test/e2e/uploads-replicas.test.ts",
  "test/e2e/limits.test.ts",
  "test/e2e/rest-edges.test.ts",
];

export default defineConfig({
  test: {
    reporters: ["default", new StoreMatrixReporter(S3PROXY_SET)],
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
      // The core set again on a second real S3 implementation, s3proxy (filesystem provider),
      // so no test passes only because of one server's quirks (see "S3-compatible stores" in README.md).
      {
        test: {
          name: "s3proxy",
          include: S3PROXY_SET,
          globalSetup: ["test/support/global-setup.ts"],
          env: { FILES_TEST_STORE: "s3proxy" },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
