/**
 * vitest globalSetup: provides an S3 endpoint and a PostgreSQL URL to every test.
 *
 * Two projects use it: "integration" runs on moto (or `$S3_TEST_ENDPOINT`), and "s3proxy" runs
 * the core set again on s3proxy, a second real S3 implementation. Which one a project gets is
 * its `FILES_TEST_STORE` env setting ("s3proxy"; anything else is moto).
 *
 * - S3: `$S3_TEST_ENDPOINT` if set (e.g. MinIO), else a local moto_server; s3proxy for "s3proxy".
 * - PostgreSQL: `$PG_TEST_URL` if set, else a throw-away cluster (initdb + pg_ctl), one for both.
 *
 * vitest loads this file once per project, each time as a new module: what both projects share
 * (the build, PostgreSQL) is kept on globalThis, and stopped when the last project tears down.
 *
 * Tests read them with `testS3Endpoint()` / `testPgUrl()` / `testS3Store()` from `./env.ts`.
 */
import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { startMoto } from "./moto.js";
import { startPostgres } from "./postgres.js";
import { startS3Proxy } from "./s3proxy.js";

/** Which S3 implementation the tests of a project run on. */
export type S3StoreKind = "moto" | "s3proxy" | "external";

declare module "vitest" {
  export interface ProvidedContext {
    s3Endpoint: string;
    s3Store: S3StoreKind;
    pgUrl: string;
  }
}

interface Provisioned {
  value: string;
  label: string;
  stop?: () => Promise<void>;
}

interface Shared {
  built?: true;
  postgres?: Promise<Provisioned>;
  users: number;
}
const SHARED = Symbol.for("files-test.global-setup");
const shared: Shared = ((globalThis as Record<symbol, unknown>)[SHARED] ??= { users: 0 }) as Shared;

async function provisionS3(kind: "moto" | "s3proxy"): Promise<Provisioned & { kind: S3StoreKind }> {
  const t0 = Date.now();
  if (kind === "s3proxy") {
    const proxy = await startS3Proxy();
    return { kind, value: proxy.endpoint, label: `s3proxy at ${proxy.endpoint} (${secondsSince(t0)})`, stop: proxy.stop };
  }
  const fromEnv = process.env.S3_TEST_ENDPOINT?.trim();
  if (fromEnv) return { kind: "external", value: fromEnv.replace(/\/+$/, ""), label: `S3 from S3_TEST_ENDPOINT (${fromEnv})` };
  const moto = await startMoto();
  return { kind, value: moto.endpoint, label: `moto at ${moto.endpoint} (${secondsSince(t0)})`, stop: moto.stop };
}

async function provisionPostgres(): Promise<Provisioned> {
  const fromEnv = process.env.PG_TEST_URL?.trim();
  if (fromEnv) return { value: fromEnv, label: "PostgreSQL from PG_TEST_URL" };
  const t0 = Date.now();
  const pg = await startPostgres();
  return { value: pg.url, label: `PostgreSQL at ${pg.url} (${secondsSince(t0)})`, stop: pg.stop };
}

function buildServer(): void {
  if (shared.built) return;
  const root = resolve(import.meta.dirname, "../..");
  try {
    execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: root, stdio: "pipe" });
    // The browser client the server serves at "/", as `npm run build` bundles it.
    execFileSync(process.execPath, [join(root, "scripts/build-web.mjs")], { cwd: root, stdio: "pipe" });
  } catch (err) {
    const out = err as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`building the server failed:\n${out.stdout ?? ""}${out.stderr ?? ""}`);
  }
  shared.built = true;
}

function secondsSince(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

async function releasePostgres(): Promise<void> {
  shared.users--;
  if (shared.users > 0 || !shared.postgres) return;
  const pg = await shared.postgres.catch(() => undefined);
  shared.postgres = undefined;
  await pg?.stop?.();
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kind = project.config.env?.FILES_TEST_STORE === "s3proxy" ? "s3proxy" : "moto";
  // The servers under test run the compiled entry point, as `npm start` does.
  buildServer();
  shared.users++;
  const pgPromise = (shared.postgres ??= provisionPostgres());
  const [s3, pg] = await Promise.allSettled([provisionS3(kind), pgPromise]);

  if (s3.status === "rejected" || pg.status === "rejected") {
    // Do not leave the half that did start running.
    if (s3.status === "fulfilled") await s3.value.stop?.().catch(() => undefined);
    await releasePostgres().catch(() => undefined);
    const failures = [s3, pg]
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
    throw new Error(`test provisioning failed (${project.name}):\n${failures.join("\n\n")}`);
  }

  project.provide("s3Endpoint", s3.value.value);
  project.provide("s3Store", s3.value.kind);
  project.provide("pgUrl", pg.value.value);
  console.log(`[test-infra] ${project.name}: ${s3.value.label}; ${pg.value.label}`);

  let torndown = false;
  return async () => {
    if (torndown) return;
    torndown = true;
    const results = await Promise.allSettled([s3.value.stop?.(), releasePostgres()]);
    for (const r of results) {
      if (r.status === "rejected") console.error(`[test-infra] teardown error: ${String(r.reason)}`);
    }
  };
}
