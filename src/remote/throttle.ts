// Bandwidth limit (`eod serve --rate`, the daemon's background fetch): one token bucket shared by every transfer, so N parallel
// downloads share the rate the way they would share a slow link. Kept as a virtual clock (the time at which
// the link is free again, as in GCRA) rather than a refilling counter: a caller reserves its slice's
// transmission time up front, so waiters are served in the order they asked and no timer polls.

/** Shared bandwidth limit; `take(n)` resolves when `n` more bytes may be sent. */
export interface Throttle {
  /** How many bytes to send per write so that one write is ~20 ms of the link (64 KiB when unlimited). */
  readonly sliceBytes: number;
  take(bytes: number): Promise<void>;
}

const UNLIMITED: Throttle = { sliceBytes: 64 * 1024, take: () => Promise.resolve() };

/**
 * A throttle for `bytesPerS` (undefined or 0 = unlimited). Each slice is sent at the start of its reserved
 * slot, so a single small response is not delayed and a long one averages out at the rate.
 */
export function createThrottle(bytesPerS?: number): Throttle {
  if (!bytesPerS) return UNLIMITED;
  if (!Number.isFinite(bytesPerS) || bytesPerS < 0) throw new RangeError(`Rate must be a positive number of bytes per second, got ${bytesPerS}`);
  const msPerByte = 1000 / bytesPerS;
  let freeAt = 0; // performance.now() at which the link has sent everything reserved so far
  return {
    sliceBytes: Math.max(512, Math.min(64 * 1024, Math.floor(bytesPerS / 50))),
    take(bytes: number): Promise<void> {
      const now = performance.now();
      const start = Math.max(freeAt, now);
      freeAt = start + bytes * msPerByte;
      return start > now ? sleep(start - now) : Promise.resolve();
    },
  };
}

/** setTimeout as a promise. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
