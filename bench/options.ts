/** The harness's command line. */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../test/support/server-process.js";
import { MiB } from "./payload.js";
import type { PayloadSigning } from "../src/config/config.js";

export const SCENARIOS = ["large", "small", "list", "retrieve", "pg", "access"] as const;
export const TARGETS = ["direct", "grpc", "grpcjs", "grpcgo", "grpcio", "rest", "resth2", "uploads", "floor", "llama", "tslib", "tslibstream", "golib", "golibstream", "pylib", "pylibstream"] as const;
/**
 * grpcjs and grpcio (the same RPCs through @grpc/grpc-js and Python's grpcio) are cross-checks of
 * the gRPC client's share, and the slowest clients: opt-in. grpcgo, resth2 and the floor add about
 * three to four minutes to the full run and carry the gRPC-vs-REST checks: default.
 */
export const DEFAULT_TARGETS: readonly Target[] = ["direct", "grpc", "grpcgo", "rest", "resth2", "uploads", "floor", "llama"];
/** Targets that need S3 itself, left out with --storage local. */
export const S3_ONLY_TARGETS: readonly Target[] = ["direct", "llama"];
export const STORAGES = ["s3", "local"] as const;
/** The S3 server the harness starts when no endpoint is given. */
export const S3_SERVERS = ["moto", "s3proxy"] as const;
export type S3Server = (typeof S3_SERVERS)[number];
export type Scenario = (typeof SCENARIOS)[number];
export type Target = (typeof TARGETS)[number];
export type Storage = (typeof STORAGES)[number];

export interface Options {
  scenarios: Scenario[];
  sizes: number[];
  targets: Target[];
  /** Where the service and the floor keep file bytes: the S3 endpoint, or a local directory. */
  storage: Storage;
  /** Which S3 server to start (ignored with S3_BENCH_ENDPOINT / S3_ENDPOINT). */
  s3: S3Server;
  rows: number;
  outDir: string;
  runs: number;
  smallSeconds: number;
  smallMaxOps: number;
  smallConcurrency: number[];
  retrieveOps: number;
  cpuProf: boolean;
  /** The service's payload_signing; undefined leaves its default (auto). */
  payloadSigning: PayloadSigning | undefined;
  timeoutMinutes: number;
  /** The service's max_file_bytes: room for the largest size. */
  maxFileBytes: number;
  /** Also measure the service's paths on its TLS port (same run), against plaintext. */
  tls: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

  --scenarios LIST   large,small,list,retrieve,pg,access (default: all; access: list pages under
                     owner_only and llama_stack_default, in process and over REST, at --rows)
  --sizes LIST       large-transfer sizes (default: 16MiB,256MiB,1GiB; units B, KiB, MiB, GiB)
  --targets LIST     direct,grpc,grpcjs,grpcgo,grpcio,rest,resth2,uploads,floor,llama (default:
                     all but grpcjs and grpcio). grpc is connect-node's client; grpcjs, grpcgo
                     and grpcio the same RPCs through @grpc/grpc-js, grpc-go and Python's grpcio;
                     resth2 the REST API over HTTP/2 cleartext; floor a bare node:http server
                     storing the bytes on the same store (the cost floor per GiB); tslib and
                     tslibstream (opt-in, large transfers only) the TypeScript client library in
                     a process of its own, with its defaults (parallel parts above 64 MiB) and
                     with one stream per upload; golib/golibstream and pylib/pylibstream the
                     same for the Go and Python client libraries (uploads from a file)
  --s3 moto|s3proxy  the S3 server the harness starts when no endpoint is given (default: moto);
                     s3proxy is a second, multi-threaded Java server (fetched with Maven, cached)
  --storage s3|local where the service and the floor store files (default: s3). local: the
                     embedded local store in the run's temp dir; direct S3 and the reference are
                     left out and the ratios are against REST
  --rows N           rows seeded for list and retrieve, and inserted by pg (default: 100000)
  --out DIR          results directory (default: bench/results)
  --runs N           large transfers: runs per target and size, best reported (default: 1)
  --small-seconds S  small files: seconds per concurrency level (default: 10)
  --small-max-ops N  small files: at most N uploads per level (default: 20000)
  --small-concurrency LIST  (default: 1,16,64)
  --retrieve-ops N   retrieve by id: requests per target (default: 2000)
  --cpu-prof         run this service under node --cpu-prof; print its top self-time functions
  --payload-signing auto|always|never
                     the service's payload_signing S3 option (default: not set, i.e. auto)
  --timeout-min M    abort the whole run after M minutes (default: 120)
  --tls              large transfers and small uploads also run on the service's TLS port
                     (server.tls with a CA made for the run; every client trusts it), for each
                     of grpc, grpcjs, grpcgo, grpcio, rest and resth2 selected, and are compared
                     with the same path in plaintext measured in the same run

S3: S3_BENCH_ENDPOINT or S3_ENDPOINT (credentials AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, region
S3_BENCH_REGION), else a moto server started here. The reference needs Python >= 3.12
(FILES_BENCH_PYTHON, else python3.13/python3.12/python3 or pyenv's).`;

const UNITS: Record<string, number> = { b: 1, kib: 1024, mib: MiB, gib: 1024 * MiB };

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kib|mib|gib)?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: '${text}' (e.g. 16MiB, 1GiB)`);
  const bytes = Math.round(Number(m[1]) * UNITS[(m[2] ?? "b").toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`size out of range: '${text}'`);
  return bytes;
}

export function formatSize(bytes: number): string {
  if (bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

function list<T extends string>(text: string, allowed: readonly T[], flag: string): T[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new Error(`${flag}: unknown '${item}' (one of ${allowed.join(", ")})`);
  if (items.length === 0) throw new Error(`${flag}: empty list`);
  return [...new Set(items)] as T[];
}

function oneOf<T extends string>(text: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(text)) throw new Error(`${flag}: expected ${allowed.join(" or ")}, got '${text}'`);
  return text as T;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got '${text}'`);
  return n;
}

export function parseOptions(argv: string[] = process.argv.slice(2)): Options | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenarios: { type: "string", default: SCENARIOS.join(",") },
      sizes: { type: "string", default: "16MiB,256MiB,1GiB" },
      targets: { type: "string", default: DEFAULT_TARGETS.join(",") },
      storage: { type: "string", default: "s3" },
      s3: { type: "string", default: "moto" },
      rows: { type: "string", default: "100000" },
      out: { type: "string", default: "bench/results" },
      runs: { type: "string", default: "1" },
      "small-seconds": { type: "string", default: "10" },
      "small-max-ops": { type: "string", default: "20000" },
      "small-concurrency": { type: "string", default: "1,16,64" },
      "retrieve-ops": { type: "string", default: "2000" },
      "cpu-prof": { type: "boolean", default: false },
      "payload-signing": { type: "string" },
      "timeout-min": { type: "string", default: "120" },
      tls: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) return "help";
  const sizes = values.sizes.split(",").map((s) => s.trim()).filter(Boolean).map(parseSize);
  if (sizes.length === 0) throw new Error("--sizes: empty list");
  return {
    scenarios: list(values.scenarios, SCENARIOS, "--scenarios"),
    sizes,
    targets: list(values.targets, TARGETS, "--targets"),
    storage: oneOf(values.storage, STORAGES, "--storage"),
    s3: oneOf(values.s3, S3_SERVERS, "--s3"),
    rows: positiveInt(values.rows, "--rows"),
    outDir: resolve(REPO_ROOT, values.out),
    runs: positiveInt(values.runs, "--runs"),
    smallSeconds: positiveInt(values["small-seconds"], "--small-seconds"),
    smallMaxOps: positiveInt(values["small-max-ops"], "--small-max-ops"),
    smallConcurrency: values["small-concurrency"].split(",").map((s) => positiveInt(s.trim(), "--small-concurrency")),
    retrieveOps: positiveInt(values["retrieve-ops"], "--retrieve-ops"),
    cpuProf: values["cpu-prof"],
    payloadSigning: payloadSigning(values["payload-signing"]),
    timeoutMinutes: positiveInt(values["timeout-min"], "--timeout-min"),
    maxFileBytes: Math.max(512 * MiB, ...sizes),
    tls: values.tls,
  };
}

function payloadSigning(value: string | undefined): Options["payloadSigning"] {
  if (value === undefined || value === "auto" || value === "always" || value === "never") return value;
  throw new Error(`--payload-signing: expected auto, always or never, got '${value}'`);
}
