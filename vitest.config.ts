import { defineConfig } from "vitest/config";

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
