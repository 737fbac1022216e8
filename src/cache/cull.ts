// Culling under a size budget (our own sparse files: fanotify, FUSE). The budget counts the bytes of present
// chunks across every blob of the cache directory: open blobs report each change (BlobCache.onCachedChange),
// blobs no mount uses ("resting") are counted from their presence maps. When the count passes the high
// watermark, the least recently used chunks across all blobs (cull-plan.ts) are culled down to the low one:
// presence bit first, then the hole. Chunks being fetched, and chunks used in the last `graceMs` (a reader
// may be reading them right now: a fanotify answer comes before the kernel's read), are never culled.
// A write that fails for lack of space also culls, budget or not, and is retried (BlobCache.#write).
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { decodeChunkTable, encodeChunkTable, type ChunkTable } from "../image/chunk-table.ts";
import type { BlobCache } from "./blob-cache.ts";
import { planCull, punchRange, watermarks, type BudgetOptions, type CullView } from "./cull-plan.ts";
import { TICK_MS, coarseTick, nowTick } from "./lru.ts";
import { PresenceMap } from "./presence.ts";
import { punchHole } from "../sys/seek.ts";

/** A cull that freed less than it wanted waits this long before the next one (everything left is hot). */
const SHORT_ROUND_PAUSE_MS = 100;
/** A write that hit ENOSPC frees at least this much, so the next writes do not hit it again at once. */
const NO_SPACE_SLACK = 8 << 20;

export interface CullStats {
  /** The budget in bytes (0 = none) and its watermarks. */
  budget: number;
  high: number;
  low: number;
  /** Bytes of present chunks across all blobs of the cache directory: open ones and resting ones. */
  cachedBytes: number;
  restingBytes: number;
  restingBlobs: number;
  cullRuns: number;
  /** Chunks culled and their bytes (all blobs, resting ones included). */
  evictions: number;
  evictedBytes: number;
  /** Culls that freed space after a write failed for lack of it. */
  noSpaceCulls: number;
  /** Culls that could not free what they wanted (everything left was in use or too recently used). */
  shortCulls: number;
  cullErrors: number;
}

interface Resting {
  table: ChunkTable;
  digest: Uint8Array;
  presence: PresenceMap;
  ticks: Uint32Array;
}

export class Culler {
  readonly budget: BudgetOptions;
  readonly #high: number;
  readonly #low: number;
  readonly #dir: string;
  readonly #graceTicks: number;
  readonly #open: () => Iterable<BlobCache>;
  #openBytes = 0;
  /** Bytes of blobs not open, by id; null until first needed (a scan of blobs/*.present). */
  #resting: Map<string, number> | null = null;
  #restingSum = 0;
  #culling = false;
  #pausedUntil = 0;
  readonly #stats = { cullRuns: 0, evictions: 0, evictedBytes: 0, noSpaceCulls: 0, shortCulls: 0, cullErrors: 0 };
  /** Called with each cull's outcome and each error (the daemon logs them). */
  onEvent: ((level: "info" | "warn", msg: string, fields: Record<string, unknown>) => void) | null = null;

  /**
   * @param dir the cache directory (blobs under `<dir>/blobs`)
   * @param open the blobs open in the core right now
   */
  constructor(dir: string, budget: BudgetOptions, graceMs: number, open: () => Iterable<BlobCache>) {
    this.#dir = dir;
    this.budget = budget;
    ({ high: this.#high, low: this.#low } = watermarks(budget));
    this.#graceTicks = Math.ceil(graceMs / TICK_MS);
    this.#open = open;
    if (budget.size > 0) this.#restingBytes(); // exact from the start, and culls what an older budget left
  }

  get cachedBytes(): number {
    return this.#openBytes + this.#restingTotal();
  }

  /** A blob was opened with `bytes` present: it is counted through its changes from now on. */
  opened(id: string, bytes: number): void {
    this.#setResting(id, 0);
    this.#openBytes += bytes;
    this.#maybeCull();
  }

  /** A blob was closed (its map persisted) with `bytes` present; `reopened` when a new mount opened it meanwhile. */
  closed(id: string, bytes: number, reopened: boolean): void {
    this.#openBytes -= bytes;
    if (!reopened) this.#setResting(id, bytes);
  }

  /** An open blob's cached bytes changed. */
  changed(delta: number): void {
    this.#openBytes += delta;
    if (delta > 0) this.#maybeCull();
  }

  #maybeCull(): void {
    if (this.budget.size <= 0 || this.#culling || Date.now() < this.#pausedUntil) return;
    const total = this.cachedBytes;
    if (total > this.#high) this.cull(total - this.#low, "over the cache budget");
  }

  /** A write of `bytes` failed for lack of space: cull some and say whether anything was freed. */
  noSpace(bytes: number): boolean {
    const freed = this.cull(Math.max(2 * bytes, NO_SPACE_SLACK, Math.floor(this.cachedBytes / 20)), "the cache filesystem is full");
    if (freed > 0) this.#stats.noSpaceCulls++; // (fscache: nothing of ours to punch; its frontend culls whole files)
    return freed > 0;
  }

  /** Culls the least recently used chunks across all blobs until `need` bytes are freed; returns the bytes freed. */
  cull(need: number, why: string): number {
    if (this.#culling || need <= 0) return 0;
    this.#culling = true;
    const started = performance.now();
    let freed = 0;
    try {
      const open = [...this.#open()].filter((b) => b.cullable);
      const restingIds = [...this.#restingBytes()].filter(([, n]) => n > 0).map(([id]) => id);
      if (open.length === 0 && restingIds.length === 0) { // nothing we can punch (fscache: the frontend culls whole files)
        this.#pausedUntil = Date.now() + 10 * SHORT_ROUND_PAUSE_MS;
        return 0;
      }
      this.#stats.cullRuns++;
      const resting: Array<Resting | null> = restingIds.map((id) => this.#loadResting(id));
      // Resting blobs first: on equal ticks their chunks go before those of blobs someone reads.
      const views: CullView[] = [...resting.map((r) => restingView(r)), ...open.map((b) => b.cullView())];
      const plan = planCull(views, need, coarseTick() - this.#graceTicks); // the clock touches read
      for (const pick of plan) {
        try {
          if (pick.blob >= resting.length) freed += open[pick.blob - resting.length].evict(pick.chunks);
          else freed += this.#evictResting(restingIds[pick.blob], resting[pick.blob]!, pick.chunks);
        } catch (err) {
          this.#stats.cullErrors++;
          this.onEvent?.("warn", "culling a blob failed", { err });
        }
      }
      this.#stats.evictedBytes += freed;
      this.#stats.evictions += plan.reduce((n, p) => n + p.chunks.length, 0);
      if (freed < need) {
        this.#stats.shortCulls++;
        this.#pausedUntil = Date.now() + SHORT_ROUND_PAUSE_MS;
      }
      this.onEvent?.(freed < need ? "warn" : "info", "culled", { why, need, freed, chunks: plan.reduce((n, p) => n + p.chunks.length, 0), cachedBytes: this.cachedBytes, ms: Math.round(performance.now() - started) });
    } finally {
      this.#culling = false;
    }
    return freed;
  }

  stats(): CullStats {
    return {
      budget: this.budget.size, high: this.#high, low: this.#low, cachedBytes: this.cachedBytes, restingBytes: this.#restingTotal(),
      restingBlobs: this.#resting?.size ?? 0, ...this.#stats,
    };
  }

  #restingTotal(): number {
    return this.#restingSum;
  }

  /** Counts a resting blob's bytes (0: forget it), keeping the sum (checked on every fill). */
  #setResting(id: string, bytes: number): void {
    if (!this.#resting) return; // not scanned yet: the scan will count it
    this.#restingSum += bytes - (this.#resting.get(id) ?? 0);
    if (bytes > 0) this.#resting.set(id, bytes);
    else this.#resting.delete(id);
  }

  /** Bytes of every blob that has a presence map and is not open (scanned once, then kept up to date). */
  #restingBytes(): Map<string, number> {
    if (this.#resting) return this.#resting;
    this.#resting = new Map();
    const open = new Set([...this.#open()].map((b) => b.id));
    let names: string[] = [];
    try { names = fs.readdirSync(path.join(this.#dir, "blobs")); } catch { /* no blobs yet */ }
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.present$/.exec(name);
      if (!m || open.has(m[1])) continue;
      const r = this.#loadResting(m[1]);
      if (!r) continue;
      let bytes = 0;
      r.table.entries.forEach((e, i) => { if (r.presence.has(i)) bytes += e.plainSize; });
      this.#setResting(m[1], bytes);
    }
    return this.#resting;
  }

  #loadResting(id: string): Resting | null {
    const base = path.join(this.#dir, "blobs", id);
    try {
      const table = decodeChunkTable(fs.readFileSync(`${base}.ctab`), `blob ${id}`);
      const digest = createHash("sha256").update(encodeChunkTable(table)).digest();
      const loaded = PresenceMap.loadWithTicks(`${base}.present`, table.entries.length, digest);
      if (!loaded) return null;
      const ticks = loaded.ticks ?? new Uint32Array(table.entries.length).fill(nowTick(fs.statSync(`${base}.present`).mtimeMs));
      return { table, digest, presence: loaded.presence, ticks };
    } catch {
      return null; // no chunk table kept, or unreadable: not ours to cull
    }
  }

  /** Culls chunks of a blob no mount uses (nobody reads it): punch, then the map without them. */
  #evictResting(id: string, r: Resting, chunks: readonly number[]): number {
    const base = path.join(this.#dir, "blobs", id);
    const entries = r.table.entries;
    let freed = 0;
    let fd: number;
    try {
      fd = fs.openSync(base, fs.constants.O_RDWR);
    } catch (err) {
      this.#setResting(id, 0); // the file is gone: nothing to count
      throw err;
    }
    try {
      for (const i of chunks) {
        if (!r.presence.has(i)) continue;
        r.presence.clear(i);
        const p = punchRange(entries[i].plainOffset, entries[i].plainSize, i + 1 < entries.length ? entries[i + 1].plainOffset : r.table.kernelSize);
        punchHole(fd, p.offset, p.length);
        freed += entries[i].plainSize;
      }
    } finally {
      fs.closeSync(fd);
      // A crash before this save leaves bits set over holes: the next open clears them (core.ts validatePresence).
      r.presence.save(`${base}.present`, r.digest, r.ticks);
      this.#setResting(id, (this.#resting!.get(id) ?? 0) - freed);
    }
    return freed;
  }
}

function restingView(r: Resting | null): CullView {
  if (!r) return { ticks: [], bytes: () => 0, cullable: () => false };
  return { ticks: r.ticks, bytes: (i) => (r.presence.has(i) ? r.table.entries[i].plainSize : 0), cullable: (i) => r.presence.has(i) };
}
