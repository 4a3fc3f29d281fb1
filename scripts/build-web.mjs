// Bundles the browser client (src/web) into dist/web, which the server serves at "/".
// Every file is written beside its target and renamed over it, so a server running from dist
// never serves a half-written asset while another build runs.
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const src = join(root, "src/web");
const out = join(root, "dist/web");

async function put(name, contents) {
  const target = join(out, name);
  const temp = `${target}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temp, contents);
  await rename(temp, target);
}

const result = await build({
  entryPoints: [join(src, "main.ts")],
  outfile: join(out, "main.js"),
  tsconfig: join(src, "tsconfig.json"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: "linked",
  legalComments: "none",
  write: false,
  logLevel: "warning",
});

await mkdir(out, { recursive: true });
for (const file of result.outputFiles) await put(basename(file.path), file.contents);
for (const name of ["index.html", "styles.css", "favicon.svg"]) await put(name, await readFile(join(src, name)));
