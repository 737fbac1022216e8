// Culling: the one place that decides when space is given back and how much, whatever the storage. Three
// reasons start a cull: the cache is over its budget (the high watermark: down to the low one), a write
// failed for lack of space (a little more than the write), or the kernel reports the cache filesystem low on
// space (fscache: until free space is back at its run level). What goes is the least recently used first,
// through one of the two evictions (eviction.ts): chunks punched in our own sparse files (the default), or
// whole cache files the kernel owns, once a frontend supplies them (useObjects). Entries being fetched, and
// chunks used in the last `graceMs` (a reader may be reading them right now: a fanotify answer comes before
// the kernel's read), are never culled.
import type { BlobCache } from "./blob-cache.ts";
import { ChunkEviction } from "./chunk-eviction.ts";
import { watermarks, type BudgetOptions } from "./cull-plan.ts";
import { EodError } from "../errors.ts";
import { NOTHING_EVICTED, type Evicted, type Eviction, type EvictionStep } from "./eviction.ts";
import { TICK_MS, coarseTick } from "./lru.ts";
import { ObjectEviction, type KernelObject, type KernelObjects } from "./object-eviction.ts";

/** A cull that freed less than it wanted waits this long before the next one (everything left is hot). */
const SHORT_ROUND_PAUSE_MS = 100;
/** A write that hit ENOSPC frees at least this much, so the next writes do not hit it again at once. */
const NO_SPACE_SLACK = 8 << 20;
/** A budget measured by a scan (whole objects) is checked at most this often. */
const COSTLY_CHECK_MS = 1000;

export interface CullStats {
  /** The budget in bytes (0 = none) and its watermarks. */
  budget: number;
  high: number;
  low: number;
  /** Bytes the budget counts: present chunks of every blob, open or resting; or the kernel's cache files. */
  cachedBytes: number;
  restingBytes: number;
  restingBlobs: number;
  cullRuns: number;
  /** Chunks culled (holes punched), whole cache files culled, and the bytes both gave back. */
  evictions: number;
  objectEvictions: number;
  evictedBytes: number;
  /** Cache files the kernel refused to cull (a mount holds them). */
  refusedInUse: number;
  /** Culls that freed space after a write failed for lack of it. */
  noSpaceCulls: number;
  /** Culls started because the kernel reported the cache filesystem low on space. */
  lowSpaceCulls: number;
  /** Culls that could not free what they wanted (everything left was in use or too recently used). */
  shortCulls: number;
  cullErrors: number;
}

type Level = "info" | "warn";

export class Culler {
  readonly budget: BudgetOptions;
  readonly #high: number;
  readonly #low: number;
  readonly #graceTicks: number;
  readonly #chunks: ChunkEviction;
  #objects: ObjectEviction | null = null;
  #culling = false;
  #pausedUntil = 0;
  /** Costly evictions: the last measure and when it was taken, and the check that waits for the interval's end. */
  #measured = { bytes: 0, at: -Infinity };
  #checkTimer: NodeJS.Timeout | null = null;
  readonly #stats = { cullRuns: 0, evictions: 0, objectEvictions: 0, evictedBytes: 0, refusedInUse: 0, noSpaceCulls: 0, lowSpaceCulls: 0, shortCulls: 0, cullErrors: 0 };
  /** Called with each cull's outcome and each error (the daemon logs them). */
  onEvent: ((level: Level, msg: string, fields: Record<string, unknown>) => void) | null = null;

  /**
   * @param dir the cache directory (blobs under `<dir>/blobs`)
   * @param open the blobs open in the core right now
   */
  constructor(dir: string, budget: BudgetOptions, graceMs: number, open: () => Iterable<BlobCache>) {
    this.budget = budget;
    ({ high: this.#high, low: this.#low } = watermarks(budget));
    this.#graceTicks = Math.ceil(graceMs / TICK_MS);
    this.#chunks = new ChunkEviction(dir, open);
    if (budget.size > 0) this.#chunks.scanResting(); // exact from the start, and culls what an older budget left
  }

  /** Whole cache files once a frontend supplied them, else chunks. */
  get #eviction(): Eviction {
    return this.#objects ?? this.#chunks;
  }

  get cachedBytes(): number {
    return this.#eviction.costly ? this.#measure(false) : this.#eviction.cachedBytes();
  }

  /**
   * From now on whole cache files are evicted instead of chunks (the kernel owns the files: fscache).
   * Idempotent for the same `objects`; the budget is checked at once.
   */
  useObjects<O extends KernelObject>(objects: KernelObjects<O>): void {
    if (this.#objects) return;
    this.#objects = new ObjectEviction(objects as KernelObjects, (fields) => this.onEvent?.("info", "culled a cold cache file", fields));
    this.#maybeCull();
  }

  /** A whole cache object was used now (its frontend saw an OPEN, READ or CLOSE of it). */
  objectUsed(key: string): void {
    this.#objects?.used(key);
  }

  /** A blob was opened with `bytes` present: it is counted through its changes from now on. */
  opened(id: string, bytes: number): void {
    this.#chunks.opened(id, bytes);
    this.#maybeCull();
  }

  /** A blob was closed (its map persisted) with `bytes` present; `reopened` when a new mount opened it meanwhile. */
  closed(id: string, bytes: number, reopened: boolean): void {
    this.#chunks.closed(id, bytes, reopened);
  }

  /** An open blob's cached bytes changed. */
  changed(delta: number): void {
    this.#chunks.changed(delta);
    if (delta > 0) this.#maybeCull();
  }

  /** Over the high watermark: cull down to the low one. A budget measured by a scan is checked at most once a second. */
  #maybeCull(): void {
    if (this.budget.size <= 0 || this.#culling || Date.now() < this.#pausedUntil) return;
    let total: number;
    if (this.#eviction.costly) {
      const wait = this.#measured.at + COSTLY_CHECK_MS - performance.now();
      if (wait > 0) { // measured a moment ago: once more when the interval is over (the last fills count too)
        this.#checkTimer ??= setTimeout(() => { this.#checkTimer = null; this.#maybeCull(); }, wait);
        this.#checkTimer.unref();
        return;
      }
      total = this.#measure(true);
    } else {
      total = this.#eviction.cachedBytes();
    }
    if (total > this.#high) this.cull(total - this.#low, "over the cache budget");
  }

  /** A costly measure, taken again when `fresh` or when the last one is older than the check interval. */
  #measure(fresh: boolean): number {
    if (fresh || performance.now() - this.#measured.at >= COSTLY_CHECK_MS) this.#measured = { bytes: this.#eviction.cachedBytes(), at: performance.now() };
    return this.#measured.bytes;
  }

  /**
   * A write of `bytes` failed for lack of space: cull some (where the kernel keeps space levels, until free
   * space is back at them) and say whether anything was freed.
   */
  noSpace(bytes: number): boolean {
    const e = this.#eviction;
    const need = Math.max(2 * bytes, NO_SPACE_SLACK, Math.floor(this.cachedBytes / 20));
    const freed = this.#cull(need, e.spaceIsLow ? () => !e.spaceIsLow!() : null, "the cache filesystem is full");
    if (freed.bytes > 0) this.#stats.noSpaceCulls++;
    return freed.bytes > 0;
  }

  /** The kernel reports the cache filesystem low on space: cull until it is back at its run level. Returns the objects culled. */
  lowOnSpace(why: string): number {
    const e = this.#eviction;
    if (!e.spaceIsLow) return 0; // our own sparse files: no levels but the budget's
    const done = this.#cull(Infinity, () => !e.spaceIsLow!(), why);
    if (done !== NOTHING_EVICTED) this.#stats.lowSpaceCulls++;
    return done.objects;
  }

  /** Culls the least recently used entries until `need` bytes are freed; returns the bytes freed. */
  cull(need: number, why: string): number {
    return this.#cull(need, null, why).bytes;
  }

  /**
   * Culls the whole cache object `key` now, whatever its age (`eod cull`): the same eviction, counters and log
   * as any cull.
   * @throws EodError USAGE when this cache evicts chunks, not objects, when `key` has no cache file, or when
   *   the kernel refuses because a mount holds it
   */
  cullObject(key: string): void {
    if (!this.#objects) throw new EodError("USAGE", "This cache evicts chunks, not whole cache files: eod cull is for the fscache frontend");
    const one = this.#objects.planOne(key);
    const done = one && this.#cull(Math.max(1, one.bytes), null, "eod cull", () => one.steps);
    if (done?.refused) throw new EodError("USAGE", `${key} is in use by a mount; not culled`);
    if (!done?.objects) throw new EodError("USAGE", `${key} has no cache file`);
  }

  /**
   * The one cull loop: the eviction's steps, coldest first, until `enough` (default: `need` bytes freed).
   * Returns NOTHING_EVICTED itself when nothing was to be done.
   */
  #cull(need: number, enough: (() => boolean) | null, why: string, planned?: () => EvictionStep[]): Readonly<Evicted> {
    const done = (d: Evicted) => (enough ? enough() : d.bytes >= need);
    if (this.#culling || need <= 0 || (enough && enough())) return NOTHING_EVICTED;
    this.#culling = true;
    const started = performance.now();
    const total: Evicted = { bytes: 0, chunks: 0, objects: 0, refused: 0 };
    try {
      const plan = planned ? planned() : this.#eviction.plan(need, coarseTick() - this.#graceTicks); // the clock touches read
      if (plan === null) { // nothing we can evict: look again later
        this.#pausedUntil = Date.now() + 10 * SHORT_ROUND_PAUSE_MS;
        return NOTHING_EVICTED;
      }
      this.#stats.cullRuns++;
      for (const step of plan) {
        if (done(total)) break;
        try {
          const d = step();
          total.bytes += d.bytes;
          total.chunks += d.chunks;
          total.objects += d.objects;
          total.refused += d.refused;
        } catch (err) {
          this.#stats.cullErrors++;
          this.onEvent?.("warn", "culling failed", { err });
        }
      }
      this.#stats.evictions += total.chunks;
      this.#stats.objectEvictions += total.objects;
      this.#stats.evictedBytes += total.bytes;
      this.#stats.refusedInUse += total.refused;
      const short = !done(total);
      if (short) {
        this.#stats.shortCulls++;
        this.#pausedUntil = Date.now() + SHORT_ROUND_PAUSE_MS;
      }
      if (this.#eviction.costly) this.#measured.bytes -= total.bytes;
      this.onEvent?.(short ? "warn" : "info", "culled", {
        why, need: Number.isFinite(need) ? need : undefined, freed: total.bytes, chunks: total.chunks, objects: total.objects, refusedInUse: total.refused,
        cachedBytes: this.cachedBytes, ...this.#eviction.spaceNote?.(), ms: Math.round(performance.now() - started),
      });
    } finally {
      this.#culling = false;
    }
    return total;
  }

  stats(): CullStats {
    return {
      budget: this.budget.size, high: this.#high, low: this.#low, cachedBytes: this.cachedBytes,
      restingBytes: this.#objects ? 0 : this.#chunks.restingBytes, restingBlobs: this.#objects ? 0 : this.#chunks.restingBlobs, ...this.#stats, // whole objects: counted by the scan
    };
  }

  /** Stops the check that waits for its interval. */
  close(): void {
    if (this.#checkTimer) clearTimeout(this.#checkTimer);
    this.#checkTimer = null;
  }
}
