/**
 * The Go client library (gen/go/filesclient) against real servers on moto S3: its own Go tests
 * (`go test`, which read the servers' addresses from FILES_TEST_* variables and skip without
 * them; here none may skip), and every ```go example of gen/go/filesclient/README.md, built in a
 * module of its own that requires the library through a `replace`, as a user's would.
 * Go must be on PATH; the first run fetches grpc-go and protobuf from the Go module proxy.
 */
import { spawn } from "node:child_process";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestBucket, tempDir, testS3Endpoint } from "../support/env.js";
import { REPO_ROOT, s3ProviderConfig, startServer, type ServerProcess } from "../support/server-process.js";
import { issueCert, issueServerCert, makeCa } from "../support/test-certs.js";
import { MiB } from "../support/test-helpers.js";

const MODULE_DIR = join(REPO_ROOT, "gen/go");
const MODULE_PATH = "github.com/s3-files-service/s3-files-service/gen/go";
const README = join(MODULE_DIR, "filesclient/README.md");
const SMALL_MAX_FILE_BYTES = MiB;

// Obviously fake keys: the list test's principal, and the README examples' own.
const LIST_KEY = { key: "sk-fake-go-library-lister-0000000", principal: "go-lister" };
const README_KEY = { key: "sk-fake-go-library-readme-0000000", principal: "go-readme" };

/** Every top-level test of the package; each must run and pass (none skipped, none missing). */
const GO_TESTS = [
  "TestErrorKinds",
  "TestErrorRequestIDs",
  "TestRetryablePartErrors",
  "TestBackoffGrowsWithJitterAndIsCapped",
  "TestOptionsAreCheckedBeforeAnyCall",
  "TestChunking",
  "TestRoundTripsAtTheEdges",
  "TestUploadMetadataAndProgress",
  "TestRangedDownloads",
  "TestUploadsAcrossThePartThreshold",
  "TestDefaultPartSizeFitsTheServersMessageLimit",
  "TestFailedPartsAreRetried",
  "TestAPartThatKeepsFailingCancelsTheUpload",
  "TestCorruptedUploadsAreCaught",
  "TestADownloadCutMidWayResumes",
  "TestACorruptedDownloadIsAnIntegrityError",
  "TestListingEveryPage",
  "TestNotFound",
  "TestUnauthenticated",
  "TestTooLarge",
  "TestInvalidArguments",
  "TestDialFailsWithTheReason",
  "TestTLS",
];

// The local toolchain only; go.sum is committed, so the default -mod=readonly holds.
const goEnv: NodeJS.ProcessEnv = { ...process.env, GOTOOLCHAIN: "local", GOWORK: "off" };
for (const name of Object.keys(goEnv)) if (name.startsWith("FILES_")) delete goEnv[name];

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end, keeping all of its output (go test -json writes a lot). */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const describeRun = (r: Run, tail = 8_000) =>
  `exit ${r.code ?? `signal ${r.signal}`} after ${r.ms} ms\n--- stdout ---\n${r.stdout.slice(-tail)}\n--- stderr ---\n${r.stderr.slice(-tail)}`;

let plain: ServerProcess;
let auth: ServerProcess;
let small: ServerProcess;
let tls: ServerProcess;
let dir: string;
let caFile: string;
let clientCert: { certFile: string; keyFile: string };
const servers = () => [plain, auth, small, tls];
const addr = (s: ServerProcess) => `127.0.0.1:${s.port}`;

beforeAll(async () => {
  dir = await tempDir("go-library");
  const ca = makeCa("Files Go Library CA", join(dir, "ca"));
  caFile = ca.certFile;
  const serverCert = issueServerCert(ca);
  clientCert = issueCert(ca, { cn: "go-cert-principal" });
  const buckets = await Promise.all(["go-lib-plain", "go-lib-auth", "go-lib-small", "go-lib-tls"].map((b) => createTestBucket(b)));
  const config = (i: number, server: object = {}) => ({
    ...s3ProviderConfig(testS3Endpoint(), buckets[i]!, { type: "sqlite", db_path: join(dir, `files-${i}.db`) }),
    server,
  });
  [plain, auth, small, tls] = await Promise.all([
    startServer({ config: config(0) }),
    startServer({ config: config(1, { auth: { api_keys: [LIST_KEY, README_KEY] } }) }),
    startServer({ config: config(2, { limits: { max_file_bytes: SMALL_MAX_FILE_BYTES } }) }),
    startServer({
      https: true,
      config: config(3, {
        auth: { api_keys: [LIST_KEY, README_KEY] },
        tls: {
          cert_file: serverCert.certFile,
          key_file: serverCert.keyFile,
          client_ca_file: caFile,
          client_auth: "optional",
          principal_from: "subject_cn",
        },
      }),
    }),
  ]);
}, 300_000);

afterAll(async () => {
  for (const server of servers()) if (server) expect(await server.stop()).toBe(0);
});

interface TestEvent {
  Action: string;
  Test?: string;
  Output?: string;
  Elapsed?: number;
}

describe("the Go client library", () => {
  it("passes its go test suite against the live servers, with no test skipped", async () => {
    const reportFile = join(dir, "go-test-report.json");
    const env: NodeJS.ProcessEnv = {
      ...goEnv,
      FILES_TEST_TARGET: addr(plain),
      FILES_TEST_AUTH_TARGET: addr(auth),
      FILES_TEST_AUTH_TOKEN: LIST_KEY.key,
      FILES_TEST_SMALL_TARGET: addr(small),
      FILES_TEST_SMALL_MAX_FILE_BYTES: String(SMALL_MAX_FILE_BYTES),
      FILES_TEST_TLS_TARGET: addr(tls),
      FILES_TEST_TLS_CA: caFile,
      FILES_TEST_TLS_CERT: clientCert.certFile,
      FILES_TEST_TLS_KEY: clientCert.keyFile,
      FILES_TEST_REPORT: reportFile,
    };
    // vet first: the module must stay vet-clean, and a compile error shows here with its message.
    const vet = await run("go", ["vet", "./..."], { cwd: MODULE_DIR, env: goEnv, timeoutMs: 600_000 });
    expect(vet.code, `go vet ./... in gen/go: ${describeRun(vet)}`).toBe(0);
    const gofmt = await run("gofmt", ["-l", "."], { cwd: MODULE_DIR, env: goEnv, timeoutMs: 60_000 });
    expect(gofmt.stdout.trim(), "gofmt -l lists files that are not formatted").toBe("");

    const r = await run("go", ["test", "-json", "-count=1", "-timeout=15m", "./filesclient/..."], { cwd: MODULE_DIR, env, timeoutMs: 960_000 });
    const events = r.stdout
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as TestEvent);
    const outcome = new Map<string, string>();
    const outputOf = (test: string) =>
      events
        .filter((e) => e.Action === "output" && (e.Test === test || e.Test?.startsWith(`${test}/`)))
        .map((e) => e.Output)
        .join("");
    for (const e of events) if (e.Test && ["pass", "fail", "skip"].includes(e.Action)) outcome.set(e.Test, e.Action);
    const failed = [...outcome].filter(([, a]) => a === "fail").map(([t]) => t);
    const skipped = [...outcome].filter(([, a]) => a === "skip").map(([t]) => t);
    const details = [
      ...failed.map((t) => `--- ${t} failed ---\n${outputOf(t).slice(-6_000)}`),
      ...skipped.map((t) => `--- ${t} skipped ---\n${outputOf(t)}`),
      describeRun(r, 3_000),
      `--- plain server (last 30 lines) ---\n${plain.output.slice(-30).join("\n")}`,
    ].join("\n");
    expect(failed, details).toEqual([]);
    expect(skipped, details).toEqual([]);
    expect(r.code, details).toBe(0);
    const passedTopLevel = [...outcome].filter(([t, a]) => a === "pass" && !t.includes("/")).map(([t]) => t);
    expect(passedTopLevel.sort(), details).toEqual([...GO_TESTS].sort());
    const subtests = [...outcome.keys()].filter((t) => t.includes("/")).length;
    console.log(`go test: ${passedTopLevel.length} tests and ${subtests} subtests passed in ${(r.ms / 1000).toFixed(1)} s`);

    // The request id a failed call reported is the one the server logged for that call.
    const report = JSON.parse(await readFile(reportFile, "utf8")) as { not_found_request_id?: string };
    expect(report.not_found_request_id).toMatch(/^[0-9a-f]{32}$/);
    const logged = plain.output
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg?: string; request_id?: string; code?: string; rpc?: string })
      .find((entry) => entry.msg === "rpc" && entry.request_id === report.not_found_request_id);
    expect(logged, `no log line with request_id ${report.not_found_request_id}`).toMatchObject({ code: "NotFound", rpc: "files.v1.FilesService/GetFile" });
  }, 1_000_000);

  it("runs every Go example of its README against a live server, plaintext with a token and over TLS", async () => {
    const blocks = [...(await readFile(README, "utf8")).matchAll(/^```go\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    expect(blocks.length, "the README's ```go blocks").toBeGreaterThanOrEqual(6);

    // A module of its own, as a user's: the library through a replace, the module's go.sum for its dependencies.
    const moduleDir = join(dir, "readme-examples");
    await mkdir(moduleDir, { recursive: true });
    await writeFile(
      join(moduleDir, "go.mod"),
      `module example.com/readme\n\ngo 1.26.0\n\nrequire ${MODULE_PATH} v0.0.0\n\nreplace ${MODULE_PATH} => ${MODULE_DIR}\n`,
    );
    await copyFile(join(MODULE_DIR, "go.sum"), join(moduleDir, "go.sum"));
    const names = blocks.map((_, i) => `example${String(i + 1).padStart(2, "0")}`);
    for (const [i, block] of blocks.entries()) {
      await mkdir(join(moduleDir, names[i]!));
      await writeFile(join(moduleDir, names[i]!, "main.go"), asProgram(block));
    }
    const tidy = await run("go", ["mod", "tidy"], { cwd: moduleDir, env: goEnv, timeoutMs: 300_000 });
    expect(tidy.code, `go mod tidy: ${describeRun(tidy)}`).toBe(0);
    const build = await run("go", ["build", "-o", join(moduleDir, "bin") + "/", "./..."], { cwd: moduleDir, env: goEnv, timeoutMs: 600_000 });
    expect(build.code, `building the README examples: ${describeRun(build)}\n${programsListing(blocks)}`).toBe(0);

    const targets = [
      { name: "plaintext with an API key", env: { FILES_TARGET: addr(auth), FILES_TOKEN: README_KEY.key } },
      { name: "TLS trusting the test CA", env: { FILES_TARGET: addr(tls), FILES_TOKEN: README_KEY.key, FILES_CA_FILE: caFile } },
    ];
    for (const target of targets) {
      for (const [i, block] of blocks.entries()) {
        // The first snippet dials plaintext as written; the others take their client from "Connect", which reads FILES_CA_FILE.
        if (target.env.FILES_CA_FILE && block.includes("filesclient.Dial(") && !block.includes("FILES_CA_FILE")) continue;
        const cwd = join(moduleDir, "run", target.name.replace(/\W+/g, "-"), names[i]!);
        await mkdir(cwd, { recursive: true });
        const r = await run(join(moduleDir, "bin", names[i]!), [], { cwd, env: { ...goEnv, ...target.env }, timeoutMs: 120_000 });
        const what = `README example ${i + 1} (${target.name}):\n${block}\n${describeRun(r)}`;
        expect(r.code, what).toBe(0);
        if (block.includes("filesclient.Range(2, 5)")) expect(r.stdout, what).toContain("23456\n");
        if (block.includes("ErrNotFound")) expect(r.stdout, what).toContain("no such file");
        if (block.includes("UploadFile(ctx, \"data.jsonl\"")) expect(r.stdout, what).toMatch(/uploaded file-[0-9a-f]{32} 17 bytes/);
      }
    }
  }, 900_000);
});

/**
 * A block is a whole program if it says `package main`; otherwise it is the body of main, with
 * `ctx` and (unless the block dials itself) a `client` connected as the README's Connect section does.
 */
function asProgram(block: string): string {
  if (/^package main$/m.test(block)) return block;
  const dials = block.includes("filesclient.Dial(");
  return `package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"${MODULE_PATH}/filesclient"
	filesv1 "${MODULE_PATH}/files/v1"
)

// Each block uses some of these; the rest must not fail the build.
var (
	_ = bytes.NewReader
	_ = errors.Is
	_ = fmt.Println
	_ = io.Discard
	_ = log.Fatal
	_ = os.Getenv
	_ = strings.NewReader
	_ = time.Second
	_ = filesv1.FilePurpose_FILE_PURPOSE_USER_DATA
)

func main() {
	ctx := context.Background()
${dials ? "" : "\tclient := connect(ctx)\n\tdefer client.Close()\n"}${block.replace(/^/gm, "\t")}
}

${dials ? "var _ = connect\n\n" : ""}func connect(ctx context.Context) *filesclient.Client {
	opts := []filesclient.Option{filesclient.WithToken(os.Getenv("FILES_TOKEN"))}
	if ca := os.Getenv("FILES_CA_FILE"); ca != "" {
		opts = append(opts, filesclient.WithTLS(ca))
	}
	client, err := filesclient.Dial(ctx, os.Getenv("FILES_TARGET"), opts...)
	if err != nil {
		log.Fatal(err)
	}
	return client
}
`;
}

function programsListing(blocks: string[]): string {
  return blocks.map((b, i) => `--- example${String(i + 1).padStart(2, "0")}/main.go ---\n${asProgram(b)}`).join("\n");
}
