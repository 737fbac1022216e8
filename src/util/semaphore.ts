// A FIFO counting semaphore: bounds concurrent work (remote reads, fills, pulls) without starving the oldest waiter.
/**
 * A counting semaphore whose waiters are served first in, first out, so a burst of reads cannot starve the
 * oldest one. A waiter whose signal aborts leaves the queue and rejects with the signal's reason.
 */
export class Semaphore {
  #free: number;
  readonly #queue: Array<{ grant: () => void }> = [];

  constructor(slots: number) {
    this.#free = slots;
  }

  /** Waits for a slot; call the returned function exactly once to give it back. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0 && this.#queue.length === 0) {
      this.#free--;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.push(waiter);
    });
    return this.#releaser();
  }

  /** Runs `fn` holding a slot. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#queue.shift();
      // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
      if (next) next.grant();
      else this.#free++;
    };
  }
}
