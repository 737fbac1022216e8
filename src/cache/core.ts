// The one cache core every frontend calls. It owns the cache directory's blobs: opens each blob's storage and
// presence map (validated against the file), serves ensure()/isPresent(), bounds the memory of all fetches
// with one byte budget, and persists presence maps durably in the background.
//
//   <cache-dir>/blobs/<id>           the blob's kernel form, sparse (the file erofs reads as device=)
//   <cache-dir>/blobs/<id>.present   presence map (presence.ts)
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import type { ChunkTable } from "../image/chunk-table.ts";
import { encodeChunkTable } from "../image/chunk-table.ts";
import { BlobCache, type BlobSourceRef, type BlobStats } from "./blob-cache.ts";
import { ByteBudget } from "./budget.ts";
import { BufferPool } from "../util/buffer-pool.ts";
import { sha256 } from "../util/sha256.ts";
import { PresenceMap } from "./presence.ts";
import { SparseFileStorage, type BlobStorage } from "./storage.ts";
import { Culler, type CullStats } from "./cull.ts";
import { BUDGET_DEFAULTS } from "./cull-plan.ts";
import { Semaphore } from "../util/semaphore.ts";

/** The share of the memory budget that idle receive buffers may keep (recycled between fetches). */
const RECEIVE_BUFFERS_SHARE = 8;
/**
 * With a cache size budget, one fetch (a miss widened to its file, the files after it, a read-ahead window, a
 * prefetch request) brings at most this share of it: a few fetches in flight must not push each other out.
 */
const BUDGET_SHARE_PER_FETCH = 8;

/** The fetch sizes of `o`, each at most 1/BUDGET_SHARE_PER_FETCH of the cache size budget (if there is one). */
export function fetchSizesWithin(o: Required<CacheOptions>): Pick<Required<CacheOptions>, "minFetch" | "fileFetch" | "amplify" | "maxFetch" | "prefetchFetch"> {
  const cap = o.cacheSize > 0 ? Math.max(4096, Math.floor(o.cacheSize / BUDGET_SHARE_PER_FETCH)) : Infinity;
  return {
    minFetch: Math.min(o.minFetch, cap), fileFetch: Math.min(o.fileFetch, cap), amplify: Math.min(o.amplify, cap),
    maxFetch: Math.min(o.maxFetch, cap), prefetchFetch: Math.min(o.prefetchFetch, cap),
  };
}

export interface CacheOptions {
  /** An isolated miss is widened with missing neighbours up to this many plain bytes (default 32 KiB). */
  minFetch?: number;
  /**
   * A miss in a file of at most this many plain bytes also fetches the rest of the file (default 8 MiB; 0 =
   * off): a program's binary and libraries are paged in at scattered places, one round trip each otherwise.
   */
  fileFetch?: number;
  /**
   * A miss in a file smaller than this many plain bytes (fetched whole: fileFetch on) also fetches the files
   * laid out after it whole, while the fetch stays within this many plain bytes (default 128 KiB; 0 = off;
   * plan.ts): mkfs lays files out in directory order, so a package's small files come in one round trip.
   */
  amplify?: number;
  /** Upper bound of one remote request, and of a sequential reader's fetch unit (default 4 MiB). */
  maxFetch?: number;
  /** Memory for fetched + decoded bytes across all fetches (default 64 MiB). */
  memoryBudget?: number;
  /** Attempts when fetched bytes fail verification (default 3). */
  verifyAttempts?: number;
  /** How often presence maps are made durable (default 1000 ms; 0 = only on flush()/close()). */
  flushIntervalMs?: number;
  /** Prefetch requests in flight at once, across blobs (default 4: the remote keeps slots for demand misses). */
  prefetchSlots?: number;
  /**
   * Upper bound of one prefetch request (default 1 MiB): a fetched range becomes present only when all of it
   * has arrived, so smaller requests let the first-listed chunks land first.
   */
  prefetchFetch?: number;
  /** Bytes of present chunks the cache directory may hold (0 = no budget; see cull.ts). */
  cacheSize?: number;
  /** Culling starts above this percent of cacheSize (default 95)... */
  cacheHighPct?: number;
  /** ...and goes down to this percent (default 85). */
  cacheLowPct?: number;
  /** Chunks used less than this long ago are never culled (a reader may be reading them; default 200 ms). */
  cullGraceMs?: number;
}

/** Defaults of the cache options (see CacheOptions); the daemon overrides them from its environment. */
export const CACHE_DEFAULTS: Required<CacheOptions> = {
  minFetch: 32 << 10, fileFetch: 8 << 20, amplify: 128 << 10, maxFetch: 4 << 20, memoryBudget: 64 << 20, verifyAttempts: 3, flushIntervalMs: 1000, prefetchSlots: 4, prefetchFetch: 1 << 20,
  cacheSize: BUDGET_DEFAULTS.size, cacheHighPct: BUDGET_DEFAULTS.highPct, cacheLowPct: BUDGET_DEFAULTS.lowPct, cullGraceMs: 200,
};

export type EventSink = (level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>) => void;

export interface CacheStats extends CullStats {
  /** Blobs whose presence could not be made durable (fdatasync or map write failed), counted per attempt. */
  flushFailures: number;
}

export class CacheCore {
  readonly dir: string;
  readonly #blobs = new Map<string, BlobCache>();
  readonly #tableDigests = new Map<string, Uint8Array>();
  readonly #opts: Required<CacheOptions>;
  readonly #budget: ByteBudget;
  readonly #receiveBuffers: BufferPool;
  readonly #prefetchLane: Semaphore;
  readonly #timer: NodeJS.Timeout | undefined;
  /** The size budget and the LRU culling of every blob's chunks. */
  readonly culler: Culler;
  #flushing: Promise<void> | null = null;
  #flushFailures = 0;
  /** Called with the core's events: culls, failed flushes (the daemon logs them). */
  #onEvent: EventSink | null = null;
  /** closeBlob() calls still running: close() waits for them (their presence maps are not written yet). */
  readonly #closingBlobs = new Set<Promise<void>>();

  constructor(dir: string, opts: CacheOptions = {}) {
    this.dir = dir;
    this.#opts = { ...CACHE_DEFAULTS, ...opts };
    this.#budget = new ByteBudget(this.#opts.memoryBudget);
    this.#receiveBuffers = new BufferPool(Math.floor(this.#opts.memoryBudget / RECEIVE_BUFFERS_SHARE));
    this.#prefetchLane = new Semaphore(this.#opts.prefetchSlots);
    fs.mkdirSync(path.join(dir, "blobs"), { recursive: true, mode: 0o700 });
    const o = this.#opts;
    this.culler = new Culler(dir, { size: o.cacheSize, highPct: o.cacheHighPct, lowPct: o.cacheLowPct }, o.cullGraceMs, () => this.#blobs.values());
    if (this.#opts.flushIntervalMs > 0) {
      this.#timer = setInterval(() => { this.flush().catch(() => { /* logged and counted per blob; retried next time */ }); }, this.#opts.flushIntervalMs);
      this.#timer.unref();
    }
  }

  set onEvent(sink: EventSink | null) {
    this.#onEvent = sink;
    this.culler.onEvent = sink;
  }

  #emit(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
    this.#onEvent?.(level, msg, fields);
  }

  blobPath(id: string): string {
    return path.join(this.dir, "blobs", id);
  }

  /**
   * Opens (or returns the already open) cache of blob `id`. A persisted presence map is trusted only for
   * chunks whose bytes are all in the file; the rest are fetched again.
   */
  openBlob(id: string, table: ChunkTable, source: BlobSourceRef, storage?: BlobStorage): BlobCache {
    const open = this.#blobs.get(id);
    if (open) return open;
    const store: BlobStorage = storage ?? new SparseFileStorage(this.blobPath(id), table.kernelSize);
    const digest = sha256(encodeChunkTable(table));
    let presence: PresenceMap;
    let ticks: Uint32Array | null = null;
    if (store.dataIsPresence) {
      presence = new PresenceMap(table.entries.length);
      for (let i = 0; i < table.entries.length; i++) presence.set(i); // then cleared where bytes are missing
    } else {
      const loaded = PresenceMap.loadWithTicks(`${this.blobPath(id)}.present`, table.entries.length, digest);
      presence = loaded?.presence ?? new PresenceMap(table.entries.length);
      ticks = loaded?.ticks ?? null;
    }
    validatePresence(presence, table, store.dataRanges());
    const blob = new BlobCache(id, table, store, presence, source, {
      ...fetchSizesWithin(this.#opts), verifyAttempts: this.#opts.verifyAttempts, budget: this.#budget, receiveBuffers: this.#receiveBuffers,
      ticks, onCachedChange: (delta) => this.culler.changed(delta), onNoSpace: (bytes) => this.culler.noSpace(bytes),
    });
    this.#blobs.set(id, blob);
    this.culler.opened(id, blob.cachedBytes);
    this.#tableDigests.set(id, digest);
    return blob;
  }

  blob(id: string): BlobCache | undefined {
    return this.#blobs.get(id);
  }

  blobs(): BlobCache[] {
    return [...this.#blobs.values()];
  }

  /** ensure() of one blob; an unknown blob is an error. */
  ensure(id: string, offset: number, length: number): Promise<void> {
    const blob = this.#blobs.get(id);
    if (!blob) return Promise.reject(new EodError("IMAGE_INVALID", `Blob ${id} is not open in the cache`));
    return blob.ensure(offset, length);
  }

  /** Fetches chunks of blob `id` ahead of demand (BlobCache.prefetch) through the shared prefetch lane. */
  prefetch(id: string, chunks: readonly number[]): Promise<void> {
    return this.#blobs.get(id)?.prefetch(chunks, this.#prefetchLane) ?? Promise.resolve();
  }

  /**
   * Makes the presence of every dirty blob durable: fdatasync the blob, then replace its map. A blob whose
   * sync or save fails stays dirty (logged, counted in flushFailures) and is tried again on the next flush;
   * the others are flushed all the same. A failed sync also makes the chunks filled since the blob's last
   * successful one missing (BlobCache.dropUnsynced): the retry may succeed without their bytes. Rejects with
   * the first failure.
   */
  flush(): Promise<void> {
    // Cleared in a then-callback, which runs after this assignment: a flush with nothing dirty finishes without
    // an await, so clearing it inside #flushAll ran before the assignment and kept a settled promise here for
    // good (no map was written again: a kill -9 lost every fill since).
    this.#flushing ??= this.#flushAll().finally(() => { this.#flushing = null; });
    return this.#flushing;
  }

  async #flushAll(): Promise<void> {
    let failure: unknown = null;
    for (const [id, blob] of this.#blobs) {
      if (!blob.dirty) continue; // clean blobs cost no await
      try {
        await this.#persist(id, blob);
      } catch (err) {
        this.#flushFailures++;
        this.#emit("error", "making a blob's presence durable failed; it stays dirty and is tried again", { blob: id, err });
        failure ??= err;
      }
    }
    if (failure !== null) throw failure;
  }

  /** `always`: also when no chunk came or went (closing: the LRU ticks of its hits are saved too). */
  async #persist(id: string, blob: BlobCache, always = false): Promise<void> {
    if ((!blob.dirty && !always) || blob.storage.dataIsPresence) return;
    const changes = blob.changes;
    const snapshot = blob.presence.copy(); // chunks present now were written before the sync below
    const ticks = Uint32Array.from(blob.clock.ticks);
    const fills = blob.fills;
    try {
      await blob.storage.sync();
    } catch (err) {
      try {
        const { dropped, punchFailure } = blob.dropUnsynced();
        this.#emit("warn", "a failed sync made the chunks filled since the last one missing; they are fetched again", { blob: id, chunks: dropped, punchFailure: punchFailure ?? undefined });
      } catch (dropErr) { // watching a complete blob again failed: no hole may be punched where reads raise no event
        this.#emit("error", "making the chunks of a failed sync missing failed", { blob: id, err: dropErr });
      }
      throw err;
    }
    blob.synced(fills);
    await snapshot.saveAsync(`${this.blobPath(id)}.present`, this.#tableDigests.get(id)!, ticks);
    blob.markClean(changes); // only now: a failed sync or save leaves the blob dirty
  }

  /** Closes one blob after persisting its presence map; a mount from now on opens it afresh. */
  closeBlob(id: string): Promise<void> {
    const blob = this.#blobs.get(id);
    if (!blob) return Promise.resolve();
    this.#blobs.delete(id);
    const closing = (async () => {
      await blob.close(); // fetches in flight end before their storage does
      await this.#flushing?.catch(() => { /* counted there */ }); // which may be syncing this blob right now
      try {
        await this.#persist(id, blob, true).catch(async (err: unknown) => {
          // A failed sync dropped the chunks it was to make durable: once more, so the map left behind is true.
          this.#flushFailures++;
          this.#emit("error", "making a closing blob's presence durable failed; trying once more", { blob: id, err });
          await this.#persist(id, blob, true);
        });
      } catch (err) {
        this.#flushFailures++; // the map on disk stays the last durable one: its chunks are safe, the rest is refetched
        throw err;
      } finally {
        await blob.storage.close();
        this.culler.closed(id, blob.cachedBytes, this.#blobs.has(id));
      }
    })();
    this.#closingBlobs.add(closing);
    return closing.finally(() => this.#closingBlobs.delete(closing));
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.culler.close();
    await this.flush();
    for (const id of [...this.#blobs.keys()]) await this.closeBlob(id);
    await Promise.allSettled([...this.#closingBlobs]); // a umount's release may have started one: the daemon exits next
  }

  stats(): BlobStats[] {
    return this.blobs().map((b) => b.stats());
  }

  /** The budget, the cached bytes of the whole cache directory, what culling did, and failed flushes (eod status). */
  cacheStats(): CacheStats {
    return { ...this.culler.stats(), flushFailures: this.#flushFailures };
  }
}

/** Clears the bits of chunks that are not entirely backed by data in the file (a crash or a punched hole). */
function validatePresence(presence: PresenceMap, table: ChunkTable, ranges: ReadonlyArray<{ offset: number; length: number }>): void {
  let r = 0;
  table.entries.forEach((e, i) => {
    if (!presence.has(i)) return;
    while (r < ranges.length && ranges[r].offset + ranges[r].length <= e.plainOffset) r++;
    const inside = r < ranges.length && ranges[r].offset <= e.plainOffset && ranges[r].offset + ranges[r].length >= e.plainOffset + e.plainSize;
    if (!inside) presence.clear(i);
  });
}
