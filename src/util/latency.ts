// A bounded record of recent latencies (milliseconds) with percentiles, for `eod status` and benchmarks.
export class LatencyWindow {
  readonly #samples: Float64Array;
  #n = 0;
  #next = 0;

  constructor(size = 8192) {
    this.#samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#n = Math.min(this.#n + 1, this.#samples.length);
  }

  /** { count, p50, p90, p99, max } over the window (0s when empty). */
  summary(): { count: number; p50: number; p90: number; p99: number; max: number } {
    if (this.#n === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0 };
    const s = Array.from(this.#samples.subarray(0, this.#n)).sort((a, b) => a - b);
    const at = (q: number) => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(3));
    return { count: this.#n, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: Number(s[s.length - 1].toFixed(3)) };
  }

  reset(): void {
    this.#n = 0;
    this.#next = 0;
  }
}
