/**
 * Helpers every ObjectStore shares so that a failed or cancelled write surfaces the
 * caller's error (the body's own error, or the signal's reason), never a store-internal one.
 */

/** Remembers the first error that came from the caller's side of a put. */
export class FirstError {
  private recorded: { error: unknown } | undefined;
  record(error: unknown): void {
    this.recorded ??= { error };
  }
  get has(): boolean {
    return this.recorded !== undefined;
  }
  get error(): unknown {
    return this.recorded?.error;
  }
}

/** The reason an aborted signal carries (an AbortError DOMException when none was given). */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

/**
 * Re-yields `body`, recording into `failure` the body's error or the signal's reason.
 *
 * A pending `next()` is raced against the signal: a client that stops sending must not
 * pin the upload forever. The abandoned iterator is told to `return()` without waiting,
 * because an async generator queues `return()` behind its pending `next()`.
 */
export async function* guardBody(
  body: AsyncIterable<Uint8Array>,
  signal: AbortSignal | undefined,
  failure: FirstError,
): AsyncGenerator<Uint8Array, void, undefined> {
  const iterator = body[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        if (signal?.aborted) throw abortReason(signal);
        step = signal ? await untilAborted(iterator.next(), signal) : await iterator.next();
      } catch (err) {
        failure.record(err);
        throw err;
      }
      if (step.done) {
        done = true;
        return;
      }
      yield step.value;
    }
  } finally {
    // Release the body when we stop early (store failure, abort, body error), without waiting for it.
    if (!done) {
      try {
        void Promise.resolve(iterator.return?.()).catch(() => {});
      } catch {
        // a body that cannot be closed is the body's problem, not the store's
      }
    }
  }
}

/**
 * `promise`, or the signal's reason if it aborts first. The listener lives for one step only:
 * racing every chunk against one long-lived abort promise (Promise.race) would hang a reaction,
 * and with it the chunk, on that promise for each step, keeping the whole upload in memory.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {}); // a body failing after it lost the race is not news
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Destroys `stream` with the signal's reason when it aborts; forgets the listener once the stream closes. */
export function destroyOnAbort(
  stream: { destroy(error?: Error): unknown; once(event: "close", listener: () => void): unknown },
  signal: AbortSignal | undefined,
): void {
  if (!signal) return;
  const onAbort = () => stream.destroy(abortReason(signal) as Error);
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener("abort", onAbort, { once: true });
  stream.once("close", () => signal.removeEventListener("abort", onAbort));
}
