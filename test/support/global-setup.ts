/**
 * vitest globalSetup: provides an S3 endpoint and a PostgreSQL URL to every test.
 *
 * - S3: `$S3_TEST_ENDPOINT` if set (e.g. MinIO), else a local moto_server.
 * - PostgreSQL: `$PG_TEST_URL` if set, else a throw-away cluster (initdb + pg_ctl).
 *
 * Tests read them with `testS3Endpoint()` / `testPgUrl()` from `./env.ts`.
 */
import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { startMoto } from "./moto.js";
import { startPostgres } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    s3Endpoint: string;
    pgUrl: string;
  }
}

interface Provisioned {
  value: string;
  label: string;
  stop?: () => Promise<void>;
}

async function provisionS3(): Promise<Provisioned> {
  const fromEnv = process.env.S3_TEST_ENDPOINT?.trim();
  if (fromEnv) return { value: fromEnv.replace(/\/+$/, ""), label: `S3 from S3_TEST_ENDPOINT (${fromEnv})` };
  const t0 = Date.now();
  const moto = await startMoto();
  return { value: moto.endpoint, label: `moto at ${moto.endpoint} (${secondsSince(t0)})`, stop: moto.stop };
}

async function provisionPostgres(): Promise<Provisioned> {
  const fromEnv = process.env.PG_TEST_URL?.trim();
  if (fromEnv) return { value: fromEnv, label: "PostgreSQL from PG_TEST_URL" };
  const t0 = Date.now();
  const pg = await startPostgres();
  return { value: pg.url, label: `PostgreSQL at ${pg.url} (${secondsSince(t0)})`, stop: pg.stop };
}

function buildServer(): void {
  const root = resolve(import.meta.dirname, "../..");
  try {
    execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: root, stdio: "pipe" });
    // The browser client the server serves at "/", as `npm run build` bundles it.
    execFileSync(process.execPath, [join(root, "scripts/build-web.mjs")], { cwd: root, stdio: "pipe" });
  } catch (err) {
    const out = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`building the server failed:\n${out.stdout ?? ""}${out.stderr ?? ""}`);
  }
}

function secondsSince(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The servers under test run the compiled entry point, as `npm start` does.
  buildServer();
  const [s3, pg] = await Promise.allSettled([provisionS3(), provisionPostgres()]);

  if (s3.status === "rejected" || pg.status === "rejected") {
    // Do not leave the half that did start running.
    await Promise.allSettled(
      [s3, pg].map((r) => (r.status === "fulfilled" && r.value.stop ? r.value.stop() : Promise.resolve())),
    );
    const failures = [s3, pg]
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
    throw new Error(`test provisioning failed:\n${failures.join("\n\n")}`);
  }

  project.provide("s3Endpoint", s3.value.value);
  project.provide("pgUrl", pg.value.value);
  console.log(`[test-infra] ${s3.value.label}; ${pg.value.label}`);

  let torndown = false;
  return async () => {
    if (torndown) return;
    torndown = true;
    const results = await Promise.allSettled([s3.value.stop?.(), pg.value.stop?.()]);
    for (const r of results) {
      if (r.status === "rejected") console.error(`[test-infra] teardown error: ${String(r.reason)}`);
    }
  };
}
