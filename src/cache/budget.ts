// A byte budget shared by all fetches: a fetch waits (FIFO) until its bytes fit, so memory held by fetched
// and decoded data stays bounded under any load. A single request larger than the budget runs alone.
export class ByteBudget {
  readonly limit: number;
  #used = 0;
  readonly #waiters: Array<{ bytes: number; go: () => void }> = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  /** Resolves with a release function once `bytes` fit in the budget. */
  async acquire(bytes: number): Promise<() => void> {
    if (this.#waiters.length > 0 || !this.#fits(bytes)) {
      await new Promise<void>((go) => this.#waiters.push({ bytes, go }));
    } else {
      this.#used += bytes;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#used -= bytes;
      this.#wake();
    };
  }

  #fits(bytes: number): boolean {
    return this.#used === 0 || this.#used + bytes <= this.limit;
  }

  #wake(): void {
    while (this.#waiters.length && this.#fits(this.#waiters[0].bytes)) {
      const w = this.#waiters.shift()!;
      this.#used += w.bytes;
      w.go();
    }
  }
}
