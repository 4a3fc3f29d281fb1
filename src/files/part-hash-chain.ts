import { createHash, type Hash } from "node:crypto";

/**
 * Hashes an upload's parts in the order they began arriving, so that completing the upload need
 * not read the joined file back to learn its SHA-256. SHA-256 cannot be combined from per-part
 * digests, so the parts are fed to one running hash in order: the oldest part still streaming
 * feeds it as its bytes arrive, and the parts that began after it keep their chunks (references,
 * not copies) until it ends, within a memory budget shared by every upload.
 *
 * The order the parts began in is a guess at the order `complete` will name them in (clients send
 * parts in file order, a few at a time). `take` returns the hash after the longest prefix of the
 * named parts that was hashed in that order; the caller reads back only the parts after it. A
 * part that fails is dropped (its bytes taken out of the hash); a part over the budget, or one
 * this process never saw (another replica took it), ends the prefix there. Nothing here is
 * needed for correctness: an empty prefix means "read every part back".
 */
/** Uploads tracked at once; the oldest is forgotten past this (an abandoned upload holds a few hash states). */
const MAX_CHAINS = 10_000;

export class PartHashChains {
  private readonly chains = new Map<string, Chain>();
  private buffered = 0;

  constructor(private readonly budgetBytes: number) {}

  /** Bytes held for parts waiting on an earlier one; for tests and metrics. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Starts tracking a part of `uploadId` that is about to stream. */
  begin(uploadId: string, partId: string): PartTap {
    let chain = this.chains.get(uploadId);
    if (!chain) {
      if (this.chains.size >= MAX_CHAINS) this.forget(this.chains.keys().next().value!);
      chain = new Chain(this);
      this.chains.set(uploadId, chain);
    }
    return chain.begin(partId);
  }

  /**
   * Ends tracking of `uploadId` and gives the hash after the longest prefix of `partIds` hashed in
   * that order: `parts` of them, `bytes` long (a fresh hash and 0 when there is none).
   */
  take(uploadId: string, partIds: readonly string[]): HashedPrefix {
    const chain = this.chains.get(uploadId);
    this.forget(uploadId);
    return chain?.prefix(partIds) ?? { hash: createHash("sha256"), bytes: 0, parts: 0 };
  }

  /** Drops an upload's state (cancelled, expired): its streaming parts then hash nothing. */
  forget(uploadId: string): void {
    const chain = this.chains.get(uploadId);
    if (!chain) return;
    this.chains.delete(uploadId);
    chain.close();
  }

  /** @internal */
  reserve(bytes: number): boolean {
    if (this.buffered + bytes > this.budgetBytes) return false;
    this.buffered += bytes;
    return true;
  }

  /** @internal */
  release(bytes: number): void {
    this.buffered -= bytes;
  }
}

export interface HashedPrefix {
  /** The running hash after the prefix; the caller owns it and may update and digest it. */
  hash: Hash;
  bytes: number;
  parts: number;
}

/** One part's view of its chain: pass its chunks through `wrap`, then say how it ended. */
export interface PartTap {
  wrap(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
  /** Stored and recorded (true), or failed in any way (false). Once. */
  end(ok: boolean): void;
}

type EntryState = "streaming" | "done" | "failed";

interface Entry {
  partId: string;
  state: EntryState;
  /** Chunks waiting for the earlier parts; null once fed live or when over the budget. */
  held: Uint8Array[] | null;
  heldBytes: number;
  overBudget: boolean;
  /** Bytes fed to the hash so far (the head part only). */
  fed: number;
}

class Chain {
  private hash = createHash("sha256");
  private bytes = 0;
  /** Part ids hashed in order, and the hash state and size after each (boundaries[i]: after i parts). */
  private readonly hashed: string[] = [];
  private readonly boundaries: { hash: Hash; bytes: number }[] = [{ hash: createHash("sha256"), bytes: 0 }];
  /** Parts begun and not yet hashed, in the order they began; the first is the head. */
  private readonly waiting: Entry[] = [];
  /** The prefix can grow no further (a part over the budget or a lost one). */
  private broken = false;
  private closed = false;

  constructor(private readonly owner: PartHashChains) {}

  begin(partId: string): PartTap {
    const entry: Entry = { partId, state: "streaming", held: [], heldBytes: 0, overBudget: false, fed: 0 };
    if (this.broken || this.closed) {
      entry.held = null;
      entry.overBudget = true;
    }
    this.waiting.push(entry);
    let ended = false;
    return {
      wrap: (chunks) => this.tap(entry, chunks),
      end: (ok) => {
        if (ended) return;
        ended = true;
        this.end(entry, ok);
      },
    };
  }

  private async *tap(entry: Entry, chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of chunks) {
      this.feed(entry, chunk);
      yield chunk;
    }
  }

  private feed(entry: Entry, chunk: Uint8Array): void {
    if (this.closed || entry.state !== "streaming" || chunk.byteLength === 0) return;
    if (this.waiting[0] === entry && !this.broken) {
      this.hash.update(chunk);
      this.bytes += chunk.byteLength;
      entry.fed += chunk.byteLength;
      return;
    }
    if (entry.held === null) return;
    if (!this.owner.reserve(chunk.byteLength)) {
      this.drop(entry);
      entry.overBudget = true;
      return;
    }
    entry.held.push(chunk);
    entry.heldBytes += chunk.byteLength;
  }

  private end(entry: Entry, ok: boolean): void {
    if (this.closed) return;
    const head = this.waiting[0] === entry;
    if (!ok) {
      if (head && entry.fed > 0) this.rewind();
      this.drop(entry);
      entry.state = "failed";
    } else {
      entry.state = "done";
    }
    this.advance();
  }

  /** Feeds every part that can now be hashed, in order, and makes the next streaming one the head. */
  private advance(): void {
    while (!this.broken && this.waiting.length > 0) {
      const head = this.waiting[0]!;
      if (head.state === "failed") {
        this.waiting.shift();
        continue;
      }
      if (head.overBudget) {
        this.broken = true;
        break;
      }
      if (head.held) {
        for (const chunk of head.held) this.hash.update(chunk);
        this.bytes += head.heldBytes;
        head.fed += head.heldBytes;
        this.drop(head);
      }
      if (head.state === "streaming") break; // it feeds the hash live from here on
      this.waiting.shift();
      this.hashed.push(head.partId);
      this.boundaries.push({ hash: this.hash.copy(), bytes: this.bytes });
    }
    if (this.broken) for (const entry of this.waiting) this.drop(entry);
  }

  /** Takes the head part's bytes back out of the hash. */
  private rewind(): void {
    const last = this.boundaries[this.boundaries.length - 1]!;
    this.hash = last.hash.copy();
    this.bytes = last.bytes;
  }

  private drop(entry: Entry): void {
    if (entry.held) this.owner.release(entry.heldBytes);
    entry.held = null;
    entry.heldBytes = 0;
  }

  prefix(partIds: readonly string[]): HashedPrefix {
    let parts = 0;
    while (parts < partIds.length && parts < this.hashed.length && this.hashed[parts] === partIds[parts]) parts++;
    const at = this.boundaries[parts]!;
    return { hash: at.hash.copy(), bytes: at.bytes, parts };
  }

  close(): void {
    this.closed = true;
    for (const entry of this.waiting) this.drop(entry);
  }
}
