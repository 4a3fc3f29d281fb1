/**
 * Part-sized buffers shared by the puts of one store.
 *
 * A multipart put fills a buffer, sends it and then needs another. Allocating a fresh 8 MiB
 * buffer per part (as lib-storage's Buffer.concat does) leaves the spent ones for the garbage
 * collector, and the process's RSS climbs well past the parts actually in flight before V8 gets
 * round to them. Reusing buffers keeps the memory of a put at its parts in flight. Spare buffers
 * outlive the last put by `keepMs`, so back-to-back puts (an Upload's parts) reuse them too, and
 * an idle server holds none.
 */
export class PartBuffers {
  private readonly spare: Buffer[] = [];
  private users = 0;
  private trim: NodeJS.Timeout | undefined;

  /** @param maxSpare spare buffers kept at most (more come and go with the garbage collector) */
  constructor(
    readonly size: number,
    private readonly maxSpare: number,
    private readonly keepMs = 2_000,
  ) {}

  /** Call once per put before `take`; pair with `leave`. */
  enter(): void {
    this.users++;
    clearTimeout(this.trim);
    this.trim = undefined;
  }

  leave(): void {
    this.users--;
    if (this.users > 0 || this.spare.length === 0) return;
    this.trim = setTimeout(() => {
      this.trim = undefined;
      if (this.users === 0) this.spare.length = 0;
    }, this.keepMs);
    this.trim.unref();
  }

  take(): Buffer {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (this.users > 0 && buffer.length === this.size && this.spare.length < this.maxSpare) this.spare.push(buffer);
  }

  /** Spare buffers held now (for tests). */
  get spares(): number {
    return this.spare.length;
  }
}
