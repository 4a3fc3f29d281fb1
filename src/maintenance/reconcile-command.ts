/**
 * `npm run reconcile -- --dry-run | --apply [--grace-seconds N] [--config PATH] [--json]`:
 * compares the object store with the metadata, with the configuration the server reads.
 *
 * Exit codes: 0 nothing wrong (dry run) or everything found repaired (apply); 1 problems found
 * (dry run) or some left unrepaired (apply: too young, or a repair failed); 2 usage, configuration
 * or connection errors.
 */
import { parseArgs } from "node:util";
import type { Config } from "../config/config.js";
import { ConfigError, loadConfig } from "../config/load-config.js";
import type { ObjectStore } from "../files/ports.js";
import {
  DEFAULT_GRACE_SECONDS,
  problemCount,
  Reconciler,
  repairedAll,
  type ReconcileReport,
  type RepairResult,
} from "../files/reconcile.js";
import { describeStore, openMetadata, type MetadataRepositories } from "../metadata/open.js";
import { openObjectStore } from "../storage/open-store.js";

/** Items of each kind printed in the human summary; --json prints them all. */
const MAX_EXAMPLES = 10;

const USAGE = `Usage: npm run reconcile -- (--dry-run | --apply) [--grace-seconds N] [--config PATH] [--json]

Compares the object store (under the key prefix) with the metadata database.
  --dry-run          report only; exit 1 when anything is wrong
  --apply            delete orphan objects and abort unfinished uploads older than the grace
                     period, and remove rows whose object is gone
  --grace-seconds N  leave orphans and unfinished uploads younger than N seconds alone
                     (default ${DEFAULT_GRACE_SECONDS}: an upload in flight looks the same)
  --config PATH      the server's configuration (default: $FILES_CONFIG, else the built-in one)
  --json             print the full report as JSON
Exit codes: 0 clean / all repaired, 1 problems found / left, 2 usage or configuration error.
`;

class UsageError extends Error {}

interface Args {
  mode: "dry-run" | "apply";
  graceSeconds: number;
  configPath?: string;
  json: boolean;
}

function parse(argv: string[]): Args | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "dry-run": { type: "boolean" },
        apply: { type: "boolean" },
        "grace-seconds": { type: "string" },
        config: { type: "string", short: "c" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return "help";
  if (values["dry-run"] === values.apply) throw new UsageError("give exactly one of --dry-run and --apply");
  const grace = values["grace-seconds"];
  if (grace !== undefined && !/^\d{1,9}$/.test(grace)) {
    throw new UsageError(`--grace-seconds must be a whole number of seconds, got '${grace}'`);
  }
  return {
    mode: values.apply ? "apply" : "dry-run",
    graceSeconds: grace === undefined ? DEFAULT_GRACE_SECONDS : Number(grace),
    configPath: values.config ?? (process.env.FILES_CONFIG || undefined),
    json: values.json ?? false,
  };
}

function describeObjectStore(storage: Config["storage"]): string {
  return storage.type === "remote::s3" ? `s3://${storage.bucket}/${storage.keyPrefix}` : `localfs ${storage.storageDir}`;
}

async function run(argv: string[]): Promise<number> {
  let args: Args | "help";
  let config: Config;
  try {
    args = parse(argv);
    if (args === "help") {
      process.stdout.write(USAGE);
      return 0;
    }
    config = loadConfig({ configPath: args.configPath, env: process.env });
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`reconcile: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`reconcile: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  // Never create a bucket: reconciling a bucket that is not there is a mistake in the config.
  const storage = config.storage.type === "remote::s3" ? { ...config.storage, autoCreateBucket: false } : config.storage;
  let store: ObjectStore;
  let metadata: MetadataRepositories;
  try {
    store = await openObjectStore(storage, { onInsecureTls: (message) => process.stderr.write(`reconcile: warning: ${message}\n`) });
  } catch (err) {
    process.stderr.write(`reconcile: object storage ${describeObjectStore(config.storage)}: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    metadata = await openMetadata(config.metadataStore);
  } catch (err) {
    process.stderr.write(`reconcile: ${(err as Error).message}\n`);
    return 2;
  }

  try {
    const reconciler = new Reconciler({
      store,
      files: metadata.files,
      uploads: metadata.uploads,
      keyPrefix: config.storage.type === "remote::s3" ? config.storage.keyPrefix : "",
      graceSeconds: args.graceSeconds,
    });
    const report = await reconciler.scan();
    const repair = args.mode === "apply" ? await reconciler.repair(report) : undefined;
    const unlisted = report.incompleteWritesUnlisted !== undefined;
    const exitCode = repair ? (repairedAll(repair) && !unlisted ? 0 : 1) : problemCount(report) > 0 ? 1 : 0;
    const where = { store: describeObjectStore(config.storage), metadata: describeStore(config.metadataStore) };
    const text = args.json
      ? `${JSON.stringify({ mode: args.mode, ...where, problems: problemCount(report), report, repair, exitCode }, null, 2)}\n`
      : summary(args.mode, where, report, repair);
    await write(text);
    return exitCode;
  } catch (err) {
    process.stderr.write(`reconcile: failed: ${(err as Error).message}\n`);
    return 2;
  } finally {
    await metadata.files.close().catch(() => {});
  }
}

function summary(mode: Args["mode"], where: { store: string; metadata: string }, report: ReconcileReport, repair?: RepairResult): string {
  const out: string[] = [];
  const time = (t: number) => new Date(t * 1000).toISOString();
  const age = (t: number, recent: boolean) => `${report.checkedAt - t} s old${recent ? ", within the grace period" : ""}`;
  const section = <T>(title: string, items: readonly T[], line: (item: T) => string) => {
    out.push(`${title}: ${items.length}`);
    for (const item of items.slice(0, MAX_EXAMPLES)) out.push(`  ${line(item)}`);
    if (items.length > MAX_EXAMPLES) out.push(`  ... and ${items.length - MAX_EXAMPLES} more (--json lists them all)`);
  };

  out.push(`Reconcile (${mode === "apply" ? "apply" : "dry run"}): ${where.store} against ${where.metadata}`);
  out.push(`Key prefix: ${report.keyPrefix === "" ? "(none)" : report.keyPrefix}; grace period: ${report.graceSeconds} s`);
  out.push(`Checked ${report.objects} objects, ${report.fileRows} file rows and ${report.partRows} upload parts.`);
  section("Orphan objects (no row names them)", report.orphanObjects, (o) => `${o.key} (${o.bytes} bytes, modified ${time(o.lastModified)}, ${age(o.lastModified, o.recent)})`);
  section("Rows whose object is missing", report.missingObjects, (r) => `${r.id} -> ${r.storageKey}`);
  if (report.incompleteWritesUnlisted !== undefined) {
    out.push(`Unfinished uploads: could not be listed: the object store does not implement listing them (${report.incompleteWritesUnlisted}).`);
  } else section("Unfinished uploads", report.incompleteWrites, (w) => `${w.key ?? "(temp file)"} [${w.id}] (last activity ${time(w.lastModified)}, ${age(w.lastModified, w.recent)})`);
  const unknown = [
    ...report.unknownObjects.map((o) => o.key),
    ...report.unknownIncompleteWrites.map((w) => `${w.key} (unfinished upload ${w.id})`),
  ];
  if (unknown.length > 0) section("Unknown keys, not written by this service (left alone)", unknown, (k) => k);
  if (report.rowsOutsidePrefix > 0) out.push(`Rows whose object is outside the key prefix (not checked): ${report.rowsOutsidePrefix}`);

  const problems = problemCount(report);
  if (!repair) {
    out.push(problems === 0 ? "Result: consistent, nothing to repair." : `Result: ${problems} problem(s) found. Run with --apply to repair them.`);
    return `${out.join("\n")}\n`;
  }
  out.push("Repairs:");
  out.push(`  deleted ${repair.deletedObjects.length} orphan object(s)`);
  out.push(`  aborted ${repair.abortedWrites.length} unfinished upload(s)`);
  out.push(`  removed ${repair.removedRows.length} row(s) whose object was missing`);
  if (repair.resolvedMeanwhile > 0) out.push(`  ${repair.resolvedMeanwhile} resolved themselves meanwhile (checked again before repairing)`);
  if (repair.deferred > 0) out.push(`  left ${repair.deferred} younger than the grace period (${report.graceSeconds} s) for a later run`);
  if (repair.failures.length > 0) section("  Failed", repair.failures, (f) => `${f.target}: ${f.error}`);
  if (repairedAll(repair) && report.incompleteWritesUnlisted !== undefined) {
    out.push("Result: everything found was repaired, but unfinished uploads could not be listed (see above).");
  } else out.push(repairedAll(repair) ? "Result: everything found was repaired." : "Result: some problems are left (see above).");
  return `${out.join("\n")}\n`;
}

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`reconcile: ${String((err as Error)?.stack ?? err)}\n`);
    process.exit(2);
  },
);
