// The least-recently-used clock of a blob's chunks: one coarse tick (100 ms) per chunk in a Uint32Array,
// set on every ensure() and every hit a frontend sees. A store into a typed array costs nothing next to the
// event it records, and 4 bytes per chunk of 128 KiB is 32 KiB of memory per GiB of blob. Ticks count from
// a fixed epoch, so clocks persisted with the presence map (presence.ts) still order after a restart.
const EPOCH_MS = Date.UTC(2024, 0, 1);
export const TICK_MS = 100;

/** The current tick (u32: 100 ms units since 2024-01-01, good until 2037). */
export function nowTick(ms: number = Date.now()): number {
  return Math.max(0, Math.floor((ms - EPOCH_MS) / TICK_MS)) >>> 0;
}

let cached = 0;
let refresher: NodeJS.Timeout | null = null;

/**
 * The current tick as the hot path reads it: refreshed by an unref'd timer every tick (Date.now() costs ~70 ns
 * a call, this ~5). Touches and the cull's cut-off both read this clock, so a stalled event loop delays both
 * alike and a chunk just used still counts as just used.
 */
export function coarseTick(): number {
  if (refresher === null) {
    cached = nowTick();
    refresher = setInterval(() => { cached = nowTick(); }, TICK_MS);
    refresher.unref();
  }
  return cached;
}

/** Ms since the epoch at the start of `tick` (for messages). */
export function tickToMs(tick: number): number {
  return EPOCH_MS + tick * TICK_MS;
}

export class ChunkClock {
  readonly ticks: Uint32Array;

  /** @param ticks persisted ticks to start from (same length), else every chunk starts at `start` */
  constructor(count: number, ticks?: Uint32Array | null, start: number = coarseTick()) {
    this.ticks = ticks && ticks.length === count ? ticks : new Uint32Array(count).fill(start);
  }

  /** Chunks first..last were used now. */
  touch(first: number, last: number, tick: number = coarseTick()): void {
    for (let i = first; i <= last; i++) this.ticks[i] = tick; // mostly 1–2 chunks: a loop beats fill()
  }
}
