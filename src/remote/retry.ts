// The retry policy, in one place, for every remote: which failures are repeated (RemoteError.retryable:
// timeouts, resets, short bodies, 5xx, 429), how often, and how long to wait in between: exponential
// backoff with full jitter (so many clients that failed together do not come back together), or the wait a
// 429/503 asked for in Retry-After when that is longer. One loop (RetryLoop) serves the wrapper around a
// Remote (withRetry, as undici composes its retry interceptor around a dispatcher), the registry client's
// calls and its resumed blob streams. Implementations make one attempt per call and never retry themselves.
import { RemoteError } from "../errors.ts";
import type { Remote, RemoteStats } from "./remote.ts";

export interface RetryOptions {
  /** Attempts after the first, default 3. */
  retries?: number;
  /** Backoff before retry k (k = 0, 1, …) is random(0, min(capMs, baseMs · 2^k)); defaults 50 ms and 2 s. */
  baseMs?: number;
  capMs?: number;
  /** Source of randomness in [0, 1), replaceable by tests. */
  random?: () => number;
}

export const DEFAULT_RETRIES = 3;
export const DEFAULT_BACKOFF_BASE_MS = 50;
export const DEFAULT_BACKOFF_CAP_MS = 2_000;
/** A 429/503's Retry-After is waited for up to this long; a longer one fails at once (a quota, not a blip). */
export const MAX_RETRY_AFTER_MS = 30_000;

/** The wait a 429/503 asked for, by error (set where the answer is turned into an error). */
const retryAfter = new WeakMap<object, number>();

/** Whether a failure may go away if the same request is sent again. */
export function isRetryable(err: unknown): boolean {
  return err instanceof RemoteError && err.retryable;
}

/** The wait before retry number `attempt` (0-based): full jitter over an exponentially growing window. */
export function backoffMs(attempt: number, opts: RetryOptions = {}): number {
  const base = opts.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const cap = opts.capMs ?? DEFAULT_BACKOFF_CAP_MS;
  return (opts.random ?? Math.random)() * Math.min(cap, base * 2 ** attempt);
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Records that the answer behind `err` asked to wait `ms` before trying again (a 429's or 503's Retry-After). */
export function setRetryAfter(err: RemoteError, ms: number): void {
  retryAfter.set(err, ms);
}

/** Checks the options once: a bad retry count is a caller mistake. */
export function checkRetries(retries: number | undefined): number {
  const n = retries ?? DEFAULT_RETRIES;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`retries must be a non-negative integer, got ${retries}`);
  return n;
}

/**
 * The loop around the attempts of one operation: after each failure, `failed(err)` either throws (the
 * caller gave up, no retries left, not retryable, or a Retry-After longer than MAX_RETRY_AFTER_MS) or waits
 * and returns, and the caller makes the next attempt. For code that cannot be a callback (a resumed stream);
 * everything else uses `retrying()`. Counts every failed attempt in `stats.errors` and every repeat in
 * `stats.retries`.
 */
export class RetryLoop {
  #attempt = 0;
  readonly #opts: RetryOptions;
  readonly #retries: number;
  readonly #signal: AbortSignal | undefined;
  readonly #stats: Pick<RemoteStats, "errors" | "retries">;

  constructor(opts: RetryOptions, signal?: AbortSignal, stats: Pick<RemoteStats, "errors" | "retries"> = { errors: 0, retries: 0 }) {
    this.#opts = opts;
    this.#retries = checkRetries(opts.retries);
    this.#signal = signal;
    this.#stats = stats;
  }

  async failed(err: unknown): Promise<void> {
    if (this.#signal?.aborted) throw this.#signal.reason; // the caller gave up: not a remote failure
    this.#stats.errors++;
    const asked = (err !== null && typeof err === "object" ? retryAfter.get(err) : undefined) ?? 0;
    if (this.#attempt >= this.#retries || !isRetryable(err) || asked > MAX_RETRY_AFTER_MS) throw err;
    await sleep(Math.max(backoffMs(this.#attempt, this.#opts), asked), this.#signal);
    this.#attempt++;
    this.#stats.retries++;
  }
}

/** `once` until it succeeds or the retry loop gives up (see RetryLoop); the last error is thrown as is. */
export async function retrying<T>(opts: RetryOptions, signal: AbortSignal | undefined, once: () => Promise<T>, stats?: Pick<RemoteStats, "errors" | "retries">): Promise<T> {
  const loop = new RetryLoop(opts, signal, stats);
  for (;;) {
    try {
      return await once();
    } catch (err) {
      await loop.failed(err);
    }
  }
}

/**
 * Wraps `remote` so that retryable RemoteErrors are repeated up to `retries` times with backoff. The last
 * error is thrown as is. Once the caller's signal has aborted nothing is retried and the wait is cut short.
 * `stats().retries` counts the repeated attempts; the other counters are the inner remote's.
 *
 * @example
 * const remote = withRetry(new HttpRemote("http://127.0.0.1:8080/"), { retries: 5 });
 */
export function withRetry(remote: Remote, opts: RetryOptions = {}): Remote {
  checkRetries(opts.retries);
  const counted = { errors: 0, retries: 0 };
  const run = <T>(signal: AbortSignal | undefined, once: () => Promise<T>) => retrying(opts, signal, once, counted);
  return {
    location: remote.location,
    readFile: (relPath, o) => run(o?.signal, () => remote.readFile(relPath, o)),
    readRange: (relPath, offset, length, o) => run(o?.signal, () => remote.readRange(relPath, offset, length, o)),
    size: (relPath, o) => run(o?.signal, () => remote.size(relPath, o)),
    stats: (): RemoteStats => ({ ...remote.stats(), retries: counted.retries }),
    close: () => remote.close(),
  };
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const onAbort = () => { clearTimeout(timer); reject(signal!.reason); };
    const timer = setTimeout(() => { signal?.removeEventListener("abort", onAbort); resolve(); }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
