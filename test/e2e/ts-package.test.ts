/**
 * The TypeScript client as a package: built into clients/ts/dist as its own tsconfig builds it,
 * packed by npm with its declarations and the generated code it imports, and used by its public
 * name. Every ```ts block of the README's "### TypeScript" section is type-checked against the
 * built declarations and run (Node strips the types) against a live server on moto.
 */
import { execFileSync } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { codeBlocks } from "../support/readme-examples.js";
import { describeFailure, runCommand } from "../support/moto.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";

const PACKAGE_DIR = join(REPO_ROOT, "clients/ts");
// Inside the repository, so the examples resolve the package (and its dependencies) through node_modules.
const EXAMPLES_DIR = join(REPO_ROOT, "test-artifacts", `ts-examples-${process.pid}`);

let server: ServerProcess;
let workDir: string;

beforeAll(async () => {
  const [bucket, dir] = await Promise.all([createTestBucket("ts-package"), tempDir("ts-package")]);
  workDir = dir;
  execFileSync(process.execPath, [join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "-p", join(PACKAGE_DIR, "tsconfig.json")], { cwd: REPO_ROOT, stdio: "pipe" });
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: join(dir, "files.db") }) });
  await mkdir(EXAMPLES_DIR, { recursive: true });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await rm(EXAMPLES_DIR, { recursive: true, force: true });
});

it("npm packs the built entries, their declarations and the generated code they import", async () => {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = await runCommand(npm, ["pack", "--dry-run", "--json", "--workspace", "clients/ts"], { cwd: REPO_ROOT, timeoutMs: 60_000 });
  expect(r.code, describeFailure(r)).toBe(0);
  const [pack] = JSON.parse(r.stdout) as { name: string; files: { path: string }[] }[];
  expect(pack!.name).toBe("@s3-files-service/client");
  const files = pack!.files.map((f) => f.path);
  for (const entry of ["index", "node", "web", "files-client", "errors"]) {
    expect(files).toContain(`dist/clients/ts/src/${entry}.js`);
    expect(files).toContain(`dist/clients/ts/src/${entry}.d.ts`);
  }
  expect(files).toContain("dist/gen/ts/files/v1/files_pb.js");
  expect(files).toContain("README.md");
  expect(files.filter((f) => !f.startsWith("dist/") && !["package.json", "README.md"].includes(f))).toEqual([]);
});

it("every TypeScript example in the README type-checks against the package and runs against a live server", async () => {
  const blocks = codeBlocks(await readFile(join(REPO_ROOT, "README.md"), "utf8"), "### TypeScript", "ts");
  expect(blocks.length).toBeGreaterThanOrEqual(4);
  const paths = await Promise.all(blocks.map(async (code, i) => {
    const path = join(EXAMPLES_DIR, `example-${i + 1}.mts`);
    await writeFile(path, code);
    return path;
  }));
  // The consumer's view: NodeNext resolution of the package's exports and .d.ts files.
  await writeFile(
    join(EXAMPLES_DIR, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", lib: ["ES2024", "DOM"], types: ["node"], strict: true, noEmit: true, skipLibCheck: false }, include: ["*.mts"] }),
  );
  const check = await runCommand(process.execPath, [join(REPO_ROOT, "node_modules/typescript/bin/tsc"), "-p", join(EXAMPLES_DIR, "tsconfig.json")], { cwd: EXAMPLES_DIR, timeoutMs: 120_000 });
  expect(check.code, describeFailure(check)).toBe(0);

  // The browser example runs in Node (fetch is there) with the page origin it would have.
  const preload = join(EXAMPLES_DIR, "page-origin.mjs");
  await writeFile(preload, "globalThis.location = { origin: process.env.FILES_URL };\n");
  await writeFile(join(workDir, "data.jsonl"), Array.from({ length: 2000 }, (_, i) => JSON.stringify({ i, text: "x".repeat(100) })).join("\n") + "\n");
  const outputs: string[] = [];
  for (const [i, path] of paths.entries()) {
    const r = await runCommand(process.execPath, ["--import", preload, path], { cwd: workDir, env: { ...process.env, FILES_URL: server.baseUrl, NODE_NO_WARNINGS: "1" }, timeoutMs: 120_000 });
    expect(r.code, `example ${i + 1}:\n${blocks[i]}\n${describeFailure(r)}`).toBe(0);
    outputs.push(r.stdout);
  }
  // runCommand trims the output.
  expect(outputs[0]).toMatch(/^file-[0-9a-f]{32} \d+ [0-9a-f]{64}$/);
  expect(outputs[1]).toMatch(/\nline 2\n/);
  expect(outputs[1]).toMatch(/lines\.jsonl/);
  expect(await readFile(join(workDir, "copy.jsonl"))).toEqual(await readFile(join(workDir, "data.jsonl")));
  expect(outputs[2]).toMatch(/^no such file \(request \S+\)$/);
  expect(outputs[3]).toMatch(/table\.csv/);
}, 300_000);
