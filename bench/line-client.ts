/**
 * A bench client written in another language, run as one child process and driven over a line
 * protocol: one JSON request per stdin line, one JSON answer per stdout line, `{"error": ...}` for a
 * failed request (the protocol is described in bench/clients/go/main.go). One request at a time,
 * so the harness can read the server's CPU between them. The child exits when its stdin closes,
 * and is killed should the harness die first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { guardChildProcess, OutputTail, type ChildGuard } from "../test/support/moto.js";
import { withTimeout } from "./lifecycle.js";

export class LineClient {
  private readonly child: ChildProcess;
  private readonly guard: ChildGuard | undefined;
  private readonly stderr = new OutputTail(4_000);
  private pending: { resolve: (line: string) => void; reject: (err: Error) => void } | undefined;
  private exited: Error | undefined;

  constructor(
    readonly label: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
    cwd?: string,
  ) {
    this.child = spawn(command, args, { env, cwd, stdio: ["pipe", "pipe", "pipe"] });
    this.guard = this.child.pid === undefined ? undefined : guardChildProcess(this.child.pid, { exitSignal: "SIGKILL" });
    this.child.stderr!.on("data", (d: Buffer) => this.stderr.push(d));
    this.child.stdin!.on("error", () => undefined); // a dead child: the exit handler reports it
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve(line);
    });
    const gone = (why: string) => {
      this.exited ??= new Error(`${label} ${why}${this.stderr.toString() ? `; its stderr:\n${this.stderr}` : ""}`);
      this.guard?.release();
      this.pending?.reject(this.exited);
      this.pending = undefined;
    };
    this.child.once("error", (err) => gone(`could not run ${command}: ${err.message}`));
    this.child.once("exit", (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
  }

  /** Sends one request; resolves with its answer, rejects with the client's error or after `timeoutMs`. */
  async request<T>(message: { op: string } & Record<string, unknown>, timeoutMs: number): Promise<T> {
    if (this.exited) throw this.exited;
    if (this.pending) throw new Error(`${this.label}: a request is already in flight`);
    const line = new Promise<string>((resolve, reject) => (this.pending = { resolve, reject }));
    this.child.stdin!.write(`${JSON.stringify(message)}\n`);
    let answer: T & { error?: string };
    try {
      answer = JSON.parse(await withTimeout(line, timeoutMs, `${this.label} ${message.op}`)) as T & { error?: string };
    } catch (err) {
      this.kill(); // its state is unknown now: no later request may read this one's answer
      throw err;
    }
    if (typeof answer.error === "string") throw new Error(`${this.label} ${message.op}: ${answer.error}`);
    return answer;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Closes its stdin, which ends it; kills it if it is still there after 5 s. */
  close(): void {
    this.child.stdin!.end();
    setTimeout(() => this.kill(), 5_000).unref();
  }

  private kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}
