/**
 * The browser client served at "/" over TLS, in a real Chromium that trusts only this server's key
 * (--ignore-certificate-errors-spki-list with the SHA-256 of its SubjectPublicKeyInfo, not a
 * blanket ignoreHTTPSErrors): upload in parts, list, download the same bytes, over HTTP/2 (what
 * ALPN picks) and over HTTP/1.1 (Chromium with HTTP/2 turned off).
 */
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FilesService } from "../../gen/ts/files/v1/files_pb.js";
import { launchChromium } from "../support/chromium.js";
import { tempDir } from "../support/env.js";
import { startServer, type ServerProcess } from "../support/server-process.js";
import { issueServerCert, makeCa, type TestCa, type TestCert } from "../support/test-certs.js";
import { MiB, sha256 } from "../support/test-helpers.js";

let ca: TestCa;
let serverCert: TestCert;
let server: ServerProcess;
let spkiHash: string;

beforeAll(async () => {
  ca = makeCa("Files Browser Test CA");
  serverCert = issueServerCert(ca);
  spkiHash = createHash("sha256")
    .update(new X509Certificate(serverCert.certPem).publicKey.export({ type: "spki", format: "der" }))
    .digest("base64");
  const dir = await tempDir("browser-tls");
  server = await startServer({
    https: true,
    config: {
      provider_type: "inline::localfs",
      config: { storage_dir: join(dir, "files"), metadata_store: { type: "sqlite", db_path: join(dir, "files.db") } },
      server: { tls: { cert_file: serverCert.certFile, key_file: serverCert.keyFile } },
    },
  });
  expect(server.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  if (server) expect(await server.stop()).toBe(0);
});

/** The service as an independent client sees it, trusting the test CA. */
function rpc() {
  return createClient(FilesService, createGrpcTransport({ baseUrl: server.baseUrl, nodeOptions: { ca: ca.certPem } }));
}

it("is refused by a Chromium that does not trust the server's key (nothing is ignored wholesale)", async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await expect(page.goto(`${server.baseUrl}/`)).rejects.toThrow(/net::ERR_CERT_AUTHORITY_INVALID/);
  } finally {
    await browser.close();
  }
});

for (const [protocol, extraArgs] of [
  ["h2", []],
  ["http/1.1", ["--disable-http2"]],
] as const) {
  describe(`in Chromium over TLS, ${protocol}`, () => {
    let browser: Browser;
    let page: Page;
    const pageErrors: string[] = [];

    beforeAll(async () => {
      browser = await launchChromium([`--ignore-certificate-errors-spki-list=${spkiHash}`, ...extraArgs]);
      page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
      page.on("pageerror", (err) => pageErrors.push(err.message));
    });
    afterAll(async () => {
      await browser?.close();
      expect(pageErrors).toEqual([]);
    });

    it("uploads a file in parts, lists it and downloads the same bytes", async () => {
      const response = await page.goto(`${server.baseUrl}/`);
      expect(response?.status()).toBe(200);
      expect(page.url()).toBe(`${server.baseUrl}/`);
      expect(await page.evaluate("window.isSecureContext")).toBe(true);
      await page.locator("#page-info", { hasText: /^Page 1, / }).waitFor();

      const data = randomBytes(9 * MiB + 4321); // two parts: 6 MiB and the rest
      const name = `tls-${protocol.replace("/", "")}.bin`;
      await page.locator("#file-input").setInputFiles({ name, mimeType: "application/octet-stream", buffer: data });
      await page.getByRole("button", { name: "Upload", exact: true }).click();
      await page.locator("#status", { hasText: `Uploaded ${name} as file-` }).waitFor({ timeout: 120_000 });
      expect(await page.locator("#status").getAttribute("data-kind")).toBe("ok");
      const id = /as (file-[0-9a-f]{32})\./.exec((await page.locator("#status").textContent()) ?? "")![1]!;

      const row = page.locator(`#file-rows tr[data-file-id="${id}"]`);
      await row.waitFor();
      expect(await row.locator("td.name").textContent()).toBe(name);
      const { file: stored } = await rpc().getFile({ fileId: id });
      expect(Number(stored!.bytes)).toBe(data.length);
      expect(stored!.sha256).toBe(sha256(data));

      const [download] = await Promise.all([
        page.waitForEvent("download", { timeout: 120_000 }),
        row.getByRole("button", { name: `Download ${name}`, exact: true }).click(),
      ]);
      expect(download.suggestedFilename()).toBe(name);
      const saved = await readFile(await download.path());
      expect(saved.length).toBe(data.length);
      expect(saved.equals(data)).toBe(true);
      await page.locator("#status", { hasText: `Downloaded ${name}.` }).waitFor();

      // Every call the page made went to its own https:// origin, over the expected protocol.
      const calls = (await page.evaluate(`performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("/files.v1.FilesService/"))
        .map((e) => ({ url: e.name, protocol: e.nextHopProtocol }))`)) as { url: string; protocol: string }[];
      const methods = calls.map((c) => /FilesService\/(\w+)$/.exec(c.url)![1]);
      expect(methods).toEqual(expect.arrayContaining(["ListFiles", "CreateUpload", "AddUploadPart", "CompleteUpload", "DownloadFile"]));
      for (const call of calls) {
        expect(call.url.startsWith(`${server.baseUrl}/files.v1.FilesService/`), call.url).toBe(true);
        expect(call.protocol, call.url).toBe(protocol);
      }
    });
  });
}
