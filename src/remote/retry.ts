// The retry policy, in one place, as a wrapper around any Remote (the way undici composes its retry
// interceptor around a dispatcher): which failures are repeated (RemoteError.retryable: timeouts, resets,
// short bodies, 5xx, 429), how often, and how long to wait in between (exponential backoff with full
// jitter, so many clients that failed together do not come back together). Implementations make one
// attempt per call and never retry themselves.
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

/**
 * Wraps `remote` so that retryable RemoteErrors are repeated up to `retries` times with backoff. The last
 * error is thrown as is. Once the caller's signal has aborted nothing is retried and the wait is cut short.
 * `stats().retries` counts the repeated attempts; the other counters are the inner remote's.
 *
 * @example
 * const remote = withRetry(new HttpRemote("http://127.0.0.1:8080/"), { retries: 5 });
 */
export function withRetry(remote: Remote, opts: RetryOptions = {}): Remote {
  const retries = opts.retries ?? DEFAULT_RETRIES;
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries must be a non-negative integer, got ${retries}`);
  let retried = 0;

  async function run<T>(signal: AbortSignal | undefined, once: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once();
      } catch (err) {
        if (attempt >= retries || !isRetryable(err) || signal?.aborted) throw err;
        await sleep(backoffMs(attempt, opts), signal);
        retried++;
      }
    }
  }

  return {
    location: remote.location,
    readFile: (relPath, o) => run(o?.signal, () => remote.readFile(relPath, o)),
    readRange: (relPath, offset, length, o) => run(o?.signal, () => remote.readRange(relPath, offset, length, o)),
    size: (relPath, o) => run(o?.signal, () => remote.size(relPath, o)),
    stats: (): RemoteStats => ({ ...remote.stats(), retries: retried }),
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
