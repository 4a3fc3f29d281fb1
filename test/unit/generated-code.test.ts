import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const BUF = join(ROOT, "node_modules/.bin/buf");
// buf runs the local protoc-gen-es from node_modules/.bin: nothing is fetched.
const env = { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` };

function filesUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(dir, path), readFileSync(path, "utf8"));
    }
  };
  walk(dir);
  return out;
}

describe("protobuf sources and generated code", () => {
  it("buf lint is clean", () => {
    expect(() => execFileSync(BUF, ["lint"], { cwd: ROOT, env, stdio: "pipe" })).not.toThrow();
  });

  it("gen/ is exactly what buf generate produces from proto/ (run `npm run generate` if this fails)", () => {
    const out = mkdtempSync(join(tmpdir(), "files-gen-"));
    execFileSync(BUF, ["generate", "--output", out], { cwd: ROOT, env, stdio: "pipe" });
    const fresh = filesUnder(join(out, "gen"));
    const committed = filesUnder(join(ROOT, "gen"));
    expect([...committed.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [path, text] of fresh) expect(committed.get(path), `gen/${path} is stale`).toBe(text);
  });
});
