/**
 * gen/ (TypeScript, Go and Python) must be exactly what `buf generate` makes from proto/ with the
 * pinned generators. Here rather than in the unit project because the first run installs those
 * generators (Go plugins via the Go proxy, grpcio-tools via pip; about a minute), see
 * test/support/codegen-tools.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureCodegenTools } from "../support/codegen-tools.js";
import { describeFailure, runCommand } from "../support/moto.js";
import { REPO_ROOT } from "../support/server-process.js";

const BUF = join(REPO_ROOT, "node_modules/.bin/buf");
/** Written by hand (buf.gen.yaml's Go `out` is gen/go/files so that `clean` keeps them). */
const GO_MODULE_FILES = ["go/go.mod", "go/go.sum"];
/** The Go client library (package filesclient), beside the generated packages in the same module. */
const GO_LIBRARY_DIR = "go/filesclient/";

function filesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      // Bytecode from importing gen/python by hand is no generated source.
      if (statSync(path).isDirectory()) {
        if (name !== "__pycache__") walk(path);
      } else out.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return out;
}

describe("protobuf sources and generated code", () => {
  const outputs: string[] = [];
  afterAll(() => {
    for (const dir of outputs) rmSync(dir, { recursive: true, force: true });
  });

  it("buf lint is clean", async () => {
    const r = await runCommand(BUF, ["lint"], { cwd: REPO_ROOT, timeoutMs: 60_000 });
    expect(r.code, describeFailure(r)).toBe(0);
  });

  it("gen/ is exactly what buf generate produces from proto/ (run `npm run generate` if this fails)", async () => {
    const { path } = await ensureCodegenTools();
    const out = mkdtempSync(join(tmpdir(), "files-gen-"));
    outputs.push(out);
    const r = await runCommand(BUF, ["generate", "--output", out], {
      cwd: REPO_ROOT,
      env: { ...process.env, PATH: path },
      timeoutMs: 120_000,
    });
    expect(r.code, `buf generate failed: ${describeFailure(r)}`).toBe(0);
    const fresh = filesUnder(join(out, "gen"));
    const committed = filesUnder(join(REPO_ROOT, "gen"));

    // Every language is there, so an empty output cannot pass as up to date.
    const expected = [
      "ts/files/v1/files_pb.ts",
      "go/files/v1/files.pb.go",
      "go/files/v1/files_grpc.pb.go",
      "go/files/v1/filesv1connect/files.connect.go",
      "python/files/v1/files_pb2.py",
      "python/files/v1/files_pb2.pyi",
      "python/files/v1/files_pb2_grpc.py",
    ];
    for (const file of expected) expect(fresh.has(file), `buf generate did not write gen/${file}`).toBe(true);
    // gen/go is a module whose path matches the proto's go_package.
    for (const file of GO_MODULE_FILES) expect(committed.has(file), `gen/${file} is missing`).toBe(true);
    expect(committed.get("go/go.mod")).toMatch(/^module github\.com\/s3-files-service\/s3-files-service\/gen\/go$/m);
    expect(fresh.get("go/files/v1/filesv1connect/files.connect.go")).toContain('"github.com/s3-files-service/s3-files-service/gen/go/files/v1"');
    for (const file of GO_MODULE_FILES) committed.delete(file);
    expect([...committed.keys()].some((path) => path.startsWith(GO_LIBRARY_DIR)), `gen/${GO_LIBRARY_DIR} is missing`).toBe(true);
    for (const path of [...committed.keys()]) if (path.startsWith(GO_LIBRARY_DIR)) committed.delete(path);

    expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [path, text] of fresh) expect(committed.get(path), `gen/${path} is stale`).toBe(text);
  }, 600_000);
});
