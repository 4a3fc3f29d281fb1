import { formatBytes } from "./format.js";

/** What the progress display needs from a stream: process.stderr, or a fake in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const FRAME_MS = 100; // ~10 redraws a second: smooth enough, cheap on slow terminals

/**
 * A one-line progress bar redrawn in place with `\r` when the stream is a terminal; otherwise
 * silent until `done()`, which writes one summary line (logs and pipes get no control characters).
 */
export class Progress {
  private done_ = 0;
  private lastDraw = 0;
  private readonly started = performance.now();
  private readonly tty: boolean;

  constructor(
    private readonly stream: ProgressStream,
    private readonly verb: string,
    private readonly label: string,
    private total: number | undefined,
  ) {
    this.tty = stream.isTTY === true;
  }

  setTotal(total: number): void {
    this.total = total;
  }

  add(bytes: number): void {
    this.done_ += bytes;
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.lastDraw >= FRAME_MS) {
      this.lastDraw = now;
      this.draw();
    }
  }

  /** The final state: the full bar and a newline on a terminal, a summary line otherwise. */
  finish(): void {
    const seconds = this.elapsedSeconds();
    if (this.tty) {
      this.draw();
      this.stream.write("\n");
      return;
    }
    this.stream.write(
      `${this.verb} ${this.label}: ${formatBytes(this.done_)} in ${seconds.toFixed(2)} s (${formatRate(this.done_, seconds)})\n`,
    );
  }

  /** Leaves the terminal on a fresh line so an error message is not glued to the bar. */
  abandon(): void {
    if (this.tty && this.lastDraw > 0) this.stream.write("\n");
  }

  private elapsedSeconds(): number {
    return Math.max((performance.now() - this.started) / 1000, 1e-3);
  }

  private draw(): void {
    const rate = formatRate(this.done_, this.elapsedSeconds());
    const amount = this.total === undefined ? formatBytes(this.done_) : `${formatBytes(this.done_)} / ${formatBytes(this.total)}`;
    const fraction = this.total ? Math.min(this.done_ / this.total, 1) : this.total === 0 ? 1 : undefined;
    const percent = fraction === undefined ? "" : `${(fraction * 100).toFixed(0).padStart(3)}%`;
    const tail = ` ${percent} ${amount}  ${rate}`;
    const columns = this.stream.columns && this.stream.columns > 20 ? this.stream.columns : 80;
    // The label gets what is left after a bar of 10–30 cells, truncated rather than wrapping the line.
    const barCells = fraction === undefined ? 0 : Math.max(10, Math.min(30, columns - tail.length - 24));
    const labelRoom = Math.max(columns - 1 - tail.length - (barCells ? barCells + 3 : 0), 8);
    const label = this.label.length > labelRoom ? `${this.label.slice(0, labelRoom - 1)}…` : this.label;
    let bar = "";
    if (fraction !== undefined) {
      const filled = Math.round(fraction * barCells);
      bar = ` [${"#".repeat(filled)}${"-".repeat(barCells - filled)}]`;
    }
    this.stream.write(`\r\x1b[K${label}${bar}${tail}`);
  }
}

export function formatRate(bytes: number, seconds: number): string {
  return `${formatBytes(Math.round(bytes / seconds))}/s`;
}
