/**
 * The browser client served at "/", driven in a real Chromium against the real server on S3 (moto):
 * upload in parts with progress, list with paging and a purpose filter, download, delete, errors.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { fromBinary } from "@bufbuild/protobuf";
import type { Browser, Page, Route } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CreateUploadResponseSchema, FilePurpose, FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { CONTENT_SECURITY_POLICY, webAssets } from "../../src/transport/web-assets.js";
import { launchChromium } from "../support/chromium.js";
import { createTestBucket, listAllKeys, tempDir, testS3Endpoint } from "../support/env.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { rawRequest } from "../support/raw-http.js";
import { eventually, MiB, sha256 } from "../support/test-helpers.js";

interface RestFile {
  id: string;
  filename: string;
  bytes: number;
  purpose: string;
}
interface RestList {
  data: RestFile[];
  has_more: boolean;
  last_id: string | null;
}

let server: ServerProcess;
let bucket: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium(); // first: a missing Chromium fails the file at once
  bucket = await createTestBucket("browser");
  const dir = await tempDir("browser");
  server = await startServer({ config: s3ProviderConfig(testS3Endpoint(), bucket, { type: "sqlite", db_path: `${dir}/files.db` }) });
});

afterAll(async () => {
  await browser?.close();
  if (server) expect(await server.stop()).toBe(0);
});

/** A fresh page per test, whose uncaught errors fail the test. */
let pageErrors: string[] = [];
beforeEach(async () => {
  pageErrors = [];
  page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  page.on("pageerror", (err) => pageErrors.push(err.message));
});
afterEach(async () => {
  await page?.close();
  expect(pageErrors).toEqual([]);
});

async function openPage(): Promise<void> {
  await page.goto(server.baseUrl);
  // The first page of the list has loaded.
  await page.locator("#page-info", { hasText: /^Page 1, / }).waitFor();
}

async function restCreate(filename: string, purpose: string): Promise<RestFile> {
  const form = new FormData();
  form.append("purpose", purpose);
  form.append("file", new Blob([`the content of ${filename}`]), filename);
  const res = await fetch(`${server.baseUrl}/v1/files`, { method: "POST", body: form });
  expect(res.status).toBe(200);
  return (await res.json()) as RestFile;
}

async function restList(query: string): Promise<RestList> {
  const res = await fetch(`${server.baseUrl}/v1/files?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as RestList;
}

const rowNames = () => page.locator("#file-rows td.name").allTextContents();


describe("serving the page", () => {
  it("serves / and its assets with their types, nosniff, a self-only CSP and revalidation", async () => {
    const expected: [string, string, string][] = [
      ["/", "text/html; charset=utf-8", "index.html"],
      ["/index.html", "text/html; charset=utf-8", "index.html"],
      ["/main.js", "text/javascript; charset=utf-8", "main.js"],
      ["/main.js.map", "application/json; charset=utf-8", "main.js.map"],
      ["/styles.css", "text/css; charset=utf-8", "styles.css"],
      ["/favicon.svg", "image/svg+xml", "favicon.svg"],
    ];
    for (const [path, type, file] of expected) {
      const res = await rawRequest(server.port, "GET", path);
      expect(res.status, path).toBe(200);
      expect(res.headers["content-type"], path).toBe(type);
      expect(res.headers["x-content-type-options"], path).toBe("nosniff");
      expect(res.headers["content-security-policy"], path).toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers["cache-control"], path).toBe("no-cache");
      expect(res.body.equals(await readFile(join(REPO_ROOT, "dist/web", file))), path).toBe(true);
      expect(Number(res.headers["content-length"]), path).toBe(res.body.length);

      const head = await rawRequest(server.port, "HEAD", path);
      expect(head.status, path).toBe(200);
      expect(head.body.length, path).toBe(0);
      expect(head.headers["content-length"], path).toBe(res.headers["content-length"]);

      const again = await rawRequest(server.port, "GET", path, { headers: { "if-none-match": String(res.headers.etag) } });
      expect(again.status, path).toBe(304);
      expect(again.body.length, path).toBe(0);
    }
    expect(CONTENT_SECURITY_POLICY).toMatch(/^default-src 'self';/);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe|\*/);

    const html = (await rawRequest(server.port, "GET", "/?from=bookmark")).body.toString();
    expect(html).toContain('<script type="module" src="/main.js"></script>');

    const post = await rawRequest(server.port, "POST", "/");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  it("answers 404 for anything that is not a listed asset, never a file outside the bundle", async () => {
    const packageJson = await readFile(join(REPO_ROOT, "package.json"), "utf8");
    for (const path of [
      "/../package.json",
      "/%2e%2e/package.json",
      "/..%2fpackage.json",
      "/main.js/../../../package.json",
      "/package.json",
      "/dist/web/main.js",
      "/web/main.js",
      "/./main.js",
      "//main.js",
      "/main.js/",
      "/main.ts",
      "/index.htm",
      "/MAIN.JS",
    ]) {
      const res = await rawRequest(server.port, "GET", path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString(), path).not.toContain(packageJson.slice(0, 40));
    }
  });

  it("says to run `npm run build` when the bundle is missing, and leaves other paths to the next route", async () => {
    const serve = webAssets(join(await tempDir("no-web-bundle"), "dist", "web"));
    const plain = http.createServer((req, res) => {
      void serve(req, res).then((served) => {
        if (served) return;
        res.statusCode = 418;
        res.end();
      });
    });
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    try {
      const { port } = plain.address() as AddressInfo;
      const root = await rawRequest(port, "GET", "/");
      expect(root.status).toBe(404);
      expect(root.headers["content-type"]).toBe("text/plain; charset=utf-8");
      expect(root.body.toString()).toMatch(/^The browser client is not built: run `npm run build`/);
      expect((await rawRequest(port, "GET", "/main.js")).status).toBe(404);
      expect((await rawRequest(port, "GET", "/v1/files")).status).toBe(418);
    } finally {
      await new Promise((r) => plain.close(r));
    }
  });
});

describe("in Chromium", () => {
  it("uploads 20 MiB in parts with progress, lists it, downloads the same bytes, and deletes it after confirming", async () => {
    await openPage();
    expect(await page.locator("#status").getAttribute("aria-live")).toBe("polite");
    const data = randomBytes(20 * MiB);
    const name = "browser-20mib.bin";
    const rpcs: string[] = [];
    page.on("request", (r) => {
      const m = /\/files\.v1\.FilesService\/(\w+)$/.exec(r.url());
      if (m) rpcs.push(m[1]!);
    });
    // Record every value the progress bar takes.
    await page.evaluate(`{
      const bar = document.getElementById("upload-progress");
      window.progressSeen = [];
      new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ["value"] });
    }`);

    await page.locator("#file-input").setInputFiles({ name, mimeType: "application/octet-stream", buffer: data });
    await page.locator("#upload-purpose").selectOption("user_data");
    await page.getByRole("button", { name: "Upload", exact: true }).click();

    await page.locator("#status", { hasText: `Uploaded ${name} as file-` }).waitFor({ timeout: 120_000 });
    expect(await page.locator("#status").getAttribute("data-kind")).toBe("ok");
    expect(await page.locator("#upload-progress").getAttribute("value")).toBe("100");
    expect(await page.locator("#upload-progress-text").textContent()).toMatch(/^100%/);
    const seen = (await page.evaluate("window.progressSeen")) as number[];
    expect(seen.at(-1)).toBe(100);
    expect(seen.some((v) => v > 0 && v < 100)).toBe(true); // it moved part by part
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    // CreateUpload, four parts (6, 6, 6 and 2 MiB: the client library's part size, which lets the
    // service join them inside S3), CompleteUpload: the unary Uploads RPCs, then the list refresh.
    expect(rpcs.filter((r) => r !== "ListFiles")).toEqual(["CreateUpload", ...Array(4).fill("AddUploadPart"), "CompleteUpload"]);

    const id = /as (file-[0-9a-f]{32})\./.exec((await page.locator("#status").textContent()) ?? "")![1]!;
    const row = page.locator(`#file-rows tr[data-file-id="${id}"]`);
    await row.waitFor();
    expect(await row.locator("td.name").textContent()).toBe(name);
    expect(await row.locator("td.purpose").textContent()).toBe("user_data");
    expect(await row.locator("td.number").textContent()).toBe("20.0 MiB");

    // The server agrees, and kept no staged parts.
    const stored = (await restList("purpose=user_data")).data.find((f) => f.id === id);
    expect(stored).toMatchObject({ id, filename: name, bytes: data.length, purpose: "user_data" });
    expect(await listAllKeys(bucket, "uploads/")).toEqual([]);

    await mkdir(join(REPO_ROOT, "test-artifacts"), { recursive: true });
    const screenshot = join(REPO_ROOT, "test-artifacts", "browser.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`[browser] screenshot of the page: ${screenshot}`);

    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 120_000 }),
      row.getByRole("button", { name: `Download ${name}`, exact: true }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(name);
    const saved = await readFile(await download.path());
    expect(saved.length).toBe(data.length);
    expect(sha256(saved)).toBe(sha256(data));
    await page.locator("#status", { hasText: `Downloaded ${name}.` }).waitFor();
    expect(await page.locator("#download-progress").getAttribute("value")).toBe("100");

    // Keeping it first leaves it in place; confirming deletes it.
    await row.getByRole("button", { name: `Delete ${name}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: "Delete file?" });
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(name);
    await dialog.getByRole("button", { name: "Keep it" }).click();
    await dialog.waitFor({ state: "hidden" });
    expect(await row.count()).toBe(1);
    expect((await fetch(`${server.baseUrl}/v1/files/${id}`)).status).toBe(200);

    await row.getByRole("button", { name: `Delete ${name}`, exact: true }).click();
    await dialog.getByRole("button", { name: "Delete", exact: true }).click();
    await page.locator("#status", { hasText: `Deleted ${name}.` }).waitFor();
    await row.waitFor({ state: "detached" });
    expect((await fetch(`${server.baseUrl}/v1/files/${id}`)).status).toBe(404);
    expect((await restList("purpose=user_data")).data.map((f) => f.id)).not.toContain(id);
  });

  it("pages through the list and filters it by purpose, in the server's order", async () => {
    const assistants: string[] = [];
    for (let i = 0; i < 7; i++) assistants.push((await restCreate(`paging-${i}.txt`, "assistants")).filename);
    const evals = [(await restCreate("eval-a.jsonl", "evals")).filename, (await restCreate("eval-b.jsonl", "evals")).filename];
    const first = await restList("purpose=assistants&limit=5");
    const second = await restList(`purpose=assistants&limit=5&after=${first.last_id}`);
    expect(first.has_more).toBe(true);
    expect(second.has_more).toBe(false);
    expect([...first.data, ...second.data].map((f) => f.filename).sort()).toEqual(assistants.sort());

    await openPage();
    const caption = page.locator("#page-info");
    const next = page.getByRole("button", { name: "Next page" });
    const prev = page.getByRole("button", { name: "Previous page" });
    await page.getByLabel("Per page").selectOption("5");
    await caption.filter({ hasText: "Page 1, 5 files (all purposes" }).waitFor();
    expect(await next.isEnabled()).toBe(true);

    await page.locator("#purpose-filter").selectOption("assistants");
    await caption.filter({ hasText: "Page 1, 5 files (purpose assistants" }).waitFor();
    expect(await rowNames()).toEqual(first.data.map((f) => f.filename));
    expect(await prev.isDisabled()).toBe(true);

    await next.click();
    await caption.filter({ hasText: "Page 2, 2 files (purpose assistants" }).waitFor();
    expect(await rowNames()).toEqual(second.data.map((f) => f.filename));
    expect(await next.isDisabled()).toBe(true);

    await prev.click();
    await caption.filter({ hasText: "Page 1, 5 files (purpose assistants" }).waitFor();
    expect(await rowNames()).toEqual(first.data.map((f) => f.filename));

    await page.locator("#purpose-filter").selectOption("evals");
    await caption.filter({ hasText: "Page 1, 2 files (purpose evals" }).waitFor();
    expect((await rowNames()).sort()).toEqual(evals.sort());
    expect(await page.locator("#file-rows td.purpose").allTextContents()).toEqual(["evals", "evals"]);
    expect(await next.isDisabled()).toBe(true);

    await page.locator("#purpose-filter").selectOption("vision");
    await caption.filter({ hasText: "Page 1, 0 files (purpose vision" }).waitFor();
    expect(await page.locator("#empty-list").isVisible()).toBe(true);
  });

  it("shows the server's message in the status region when a delete finds the file already gone", async () => {
    const file = await restCreate("gone-meanwhile.txt", "batch");
    await openPage();
    await page.locator("#purpose-filter").selectOption("batch");
    const row = page.locator(`#file-rows tr[data-file-id="${file.id}"]`);
    await row.waitFor();

    expect((await fetch(`${server.baseUrl}/v1/files/${file.id}`, { method: "DELETE" })).status).toBe(200);
    const again = await fetch(`${server.baseUrl}/v1/files/${file.id}`, { method: "DELETE" });
    expect(again.status).toBe(404);
    const serverMessage = ((await again.json()) as { error: { message: string } }).error.message;

    await row.getByRole("button", { name: `Delete ${file.filename}` }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
    const statusRegion = page.locator("#status");
    await statusRegion.filter({ hasText: `Could not delete ${file.filename}` }).waitFor();
    expect(await statusRegion.getAttribute("data-kind")).toBe("error");
    expect(await statusRegion.textContent()).toBe(`Could not delete ${file.filename}: ${serverMessage} (NotFound)`);
    expect(await statusRegion.isVisible()).toBe(true);
    await row.waitFor({ state: "detached" }); // the list was refreshed
  });

  it("shows the server's refusal of an upload, word for word", async () => {
    const rpc = createClient(FilesService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    const refused = await rpc
      .createUpload({ filename: "empty.txt", purpose: FilePurpose.USER_DATA, bytes: 0n, mimeType: "text/plain" })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(refused).toBeDefined();

    await openPage();
    await page.locator("#file-input").setInputFiles({ name: "empty.txt", mimeType: "text/plain", buffer: Buffer.alloc(0) });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    const statusRegion = page.locator("#status");
    await statusRegion.filter({ hasText: "Upload of empty.txt failed" }).waitFor();
    expect(await statusRegion.getAttribute("data-kind")).toBe("error");
    expect(await statusRegion.textContent()).toBe(`Upload of empty.txt failed: ${refused!.rawMessage} (InvalidArgument)`);
    expect(await page.getByRole("button", { name: "Upload", exact: true }).isEnabled()).toBe(true);
  });

  it("cancels an upload on the server when the cancel button is pressed mid-way", async () => {
    // Hold the parts in the browser, so the upload is certainly mid-way when cancelled.
    const held: Route[] = [];
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    await page.route("**/files.v1.FilesService/AddUploadPart", async (route) => {
      held.push(route);
      await released;
      await route.continue().catch(() => undefined); // the page has aborted it by then
    });
    try {
      await openPage();
      const created = page.waitForResponse("**/files.v1.FilesService/CreateUpload");
      await page.locator("#file-input").setInputFiles({ name: "cancelled.bin", mimeType: "application/octet-stream", buffer: randomBytes(9 * MiB) });
      await page.getByRole("button", { name: "Upload", exact: true }).click();
      const uploadId = fromBinary(CreateUploadResponseSchema, await (await created).body()).upload!.id;
      await eventually(async () => expect(held.length).toBeGreaterThan(0));

      const cancelled = page.waitForResponse("**/files.v1.FilesService/CancelUpload");
      await page.getByRole("button", { name: "Cancel upload" }).click();
      expect((await cancelled).status()).toBe(200);
      await page.locator("#status", { hasText: "Upload of cancelled.bin cancelled." }).waitFor();
      expect(await page.locator("#upload-progress-text").textContent()).toBe("Cancelled");

      const upload = (await (await fetch(`${server.baseUrl}/v1/uploads/${uploadId}`)).json()) as { status: string };
      expect(upload.status).toBe("cancelled");
    } finally {
      release();
      await page.unrouteAll({ behavior: "ignoreErrors" });
    }
    expect(await listAllKeys(bucket, "uploads/")).toEqual([]);
  });
});
