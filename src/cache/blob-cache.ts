// One blob in the cache: its chunk table, its storage (the kernel form, sparse), which chunks are present,
// and the fetches in flight. ensure() is idempotent and safe to call concurrently: two faults on one chunk
// share one fetch, and bytes reach the storage only after their sha256 matched the chunk table.
//
// How much a miss fetches is miss-planner.ts's; how a chunk's bytes are decoded, verified and written is
// chunk-fill.ts's. Here: each chunk of a run is released to its readers as soon as its own bytes are in and
// verified, while the rest of a (streamed) answer is still arriving; bad bytes are fetched again. The pieces
// of one gzip checkpoint in a run (a layer's seek index) are decoded in one pass once all their bytes are in,
// but a piece a reader waits for is decoded as soon as its own are.
import { EodError } from "../errors.ts";
import { decodesWithPrevious, type ChunkTable } from "../image/chunk-table.ts";
import type { Remote } from "../remote/remote.ts";
import type { Semaphore } from "../util/semaphore.ts";
import { chunksOverlapping, groupRuns, piecesToFetch, type FetchRun, type PlanOptions } from "./plan.ts";
import { PresenceMap } from "./presence.ts";
import type { BlobStorage } from "./storage.ts";
import type { ByteBudget } from "./budget.ts";
import type { FileExtents } from "../image/file-extents.ts";
import { ChunkClock } from "./lru.ts";
import { chunkPunchRange, type CullView } from "./cull-plan.ts";
import { MissPlanner } from "./miss-planner.ts";
import { decodeChunks, inflatedBy, inflatedByRun, SYNC_DECODE_MAX, writeChunk, type ChunkFillTarget } from "./chunk-fill.ts";
import type { BufferPool } from "../util/buffer-pool.ts";
import type { VerifiedChunk } from "../image/verified-chunk.ts";

export interface BlobSourceRef {
  remote: Remote;
  /** Path of the blob's remote form relative to the remote (e.g. "blobs/<id>"). */
  path: string;
}

export interface BlobCacheOptions extends PlanOptions {
  /** Fetch attempts when the remote answers with bytes that fail verification. */
  verifyAttempts: number;
  /** Upper bound of one prefetch request (remote bytes). */
  prefetchFetch: number;
  budget: ByteBudget;
  /** Where remote answers are read into (recycled), else a new buffer per fetch. */
  receiveBuffers?: BufferPool;
  /** Persisted LRU ticks of the chunks (presence.ts), else every chunk starts as used now. */
  ticks?: Uint32Array | null;
  /** Called with every change of cachedBytes (the core's budget accounting). */
  onCachedChange?: (delta: number) => void;
  /** A write failed for lack of space: free some (culling) and say whether the write is worth retrying. */
  onNoSpace?: (bytes: number) => boolean;
}

export interface BlobStats {
  id: string;
  chunks: number;
  presentChunks: number;
  /** Plain bytes of all chunks, and of the present ones. */
  totalBytes: number;
  cachedBytes: number;
  /** Bytes received from the remote (compressed). */
  fetchedBytes: number;
  /** Plain bytes decoded from them, a seek index's bytes from a checkpoint to a piece included. */
  inflatedBytes: number;
  fetches: number;
  /** Fetches started ahead of a sequential reader. */
  readaheads: number;
  /** Fetches of the image's prefetch list. */
  prefetches: number;
  misses: number;
  hits: number;
  inFlight: number;
  corrupt: number;
  errors: number;
  /** Chunks culled (holes punched) to keep the cache under its budget, and their bytes. */
  evictions: number;
  evictedBytes: number;
  /** Writes retried after culling made room (the cache filesystem was full). */
  noSpaceRetries: number;
  /** Chunks made missing again (holes punched, fetched anew) because the sync meant to make them durable failed. */
  unsyncedDropped: number;
}

export class BlobCache {
  readonly id: string;
  readonly table: ChunkTable;
  readonly storage: BlobStorage;
  readonly presence: PresenceMap;
  readonly #source: BlobSourceRef;
  readonly #opts: BlobCacheOptions;
  /** Chunks being fetched, each with the promise its readers wait on. */
  readonly #inFlight = new Map<number, Promise<void>>();
  /** Chunks a reader waits for (ensure() running), and how many readers: never culled until they are read. */
  readonly #asked = new Map<number, number>();
  /** Runs (remote requests with their retries) under way. */
  #runs = 0;
  /** Changes of presence so far, and how many of them the last durable map holds (the flusher's). */
  #changes = 0;
  #persisted = 0;
  /**
   * Chunks filled since the storage's last successful sync, each with its fill's sequence number: Linux reports
   * a failed writeback once, so when a sync fails these may never reach the disk while a later sync succeeds.
   */
  readonly #unsynced = new Map<number, number>();
  #fills = 0;
  /** Failed syncs so far: a write that was under way across one is done again (its pages may be what failed). */
  #syncFailures = 0;
  readonly #stats = { fetchedBytes: 0, inflatedBytes: 0, fetches: 0, readaheads: 0, prefetches: 0, misses: 0, hits: 0, corrupt: 0, errors: 0, evictions: 0, evictedBytes: 0, noSpaceRetries: 0, unsyncedDropped: 0 };
  /** When each chunk was last used (LRU order for culling). */
  readonly clock: ChunkClock;
  /**
   * Called before a chunk of a complete blob is culled: a frontend that stopped watching the blob's file
   * (fanotify unmarks complete blobs) must watch it again before any of it becomes a hole.
   */
  onIncomplete: (() => void) | null = null;
  /** Called when the last missing chunk became present, whatever fetched it (a read-ahead, a prefetch). */
  onComplete: (() => void) | null = null;
  readonly #misses: MissPlanner;
  readonly #fillTarget: ChunkFillTarget;
  /** Called with every range asked of this blob while set (eod trace): ensure() calls it, frontends call it for hits they see. */
  onAccess: ((offset: number, length: number) => void) | null = null;
  /** Aborted by close(): no fetch starts and no byte is written after it. */
  readonly #closing = new AbortController();
  #cachedBytes = 0;
  readonly #totalBytes: number;

  constructor(id: string, table: ChunkTable, storage: BlobStorage, presence: PresenceMap, source: BlobSourceRef, opts: BlobCacheOptions) {
    this.id = id;
    this.table = table;
    this.storage = storage;
    this.presence = presence;
    this.#source = source;
    this.#opts = opts;
    this.#totalBytes = table.entries.reduce((n, e) => n + e.plainSize, 0);
    this.clock = new ChunkClock(table.entries.length, opts.ticks);
    for (let i = 0; i < table.entries.length; i++) if (presence.has(i)) this.#cachedBytes += table.entries[i].plainSize;
    // A seek index's pieces (version 2) are cut by size, not by file: its equal, contiguous pieces look like one
    // file to the file-shape heuristics, which would fetch up to file_fetch of a layer for one small file; the
    // files' extents come from the bootstrap instead (setFiles).
    this.#misses = new MissPlanner(table.entries, opts, this.#wanted, table.version === 2);
    this.#fillTarget = {
      blobId: id, table, storage, signal: this.#closing.signal,
      remoteLocation: () => this.#source.remote.location,
      onNoSpace: (bytes) => this.#opts.onNoSpace?.(bytes) ?? false,
      onNoSpaceRetry: () => { this.#stats.noSpaceRetries++; },
    };
  }

  /** The remote the blob is fetched from (a later mount of another image may bring a better one). */
  get source(): BlobSourceRef {
    return this.#source;
  }

  /** Whether presence changed since the last durable map. */
  get dirty(): boolean {
    return this.#changes !== this.#persisted;
  }

  /** The changes so far: what a snapshot of the presence taken now holds (markClean's argument). */
  get changes(): number {
    return this.#changes;
  }

  /** The map of a snapshot taken at `changes` is durable (called by the flusher once its sync and save succeeded). */
  markClean(changes: number): void {
    this.#persisted = changes;
  }

  /** Chunks filled so far: a sync that starts now covers them (synced()'s argument). */
  get fills(): number {
    return this.#fills;
  }

  /** A sync that started when `fills` chunks had been filled succeeded: those chunks are durable. */
  synced(fills: number): void {
    for (const [i, seq] of this.#unsynced) if (seq <= fills) this.#unsynced.delete(i);
  }

  /**
   * The storage's sync failed: every chunk filled since the last successful one may be lost (its pages' error
   * is reported once, so the next sync may succeed without them). They become missing, all of them first (no
   * hit is answered from them from now on; a complete blob is watched again), then their holes are punched, so
   * that a read is a miss and fetches verified bytes again. Returns how many were dropped, and the first
   * punch that failed (its chunk stays missing all the same).
   */
  dropUnsynced(): { dropped: number; punchFailure: unknown } {
    this.#syncFailures++;
    const chunks = [...this.#unsynced.keys()].filter((i) => this.presence.has(i));
    let punchFailure: unknown = null;
    try {
      for (const i of chunks) this.#forget(i);
      this.#unsynced.clear();
    } finally {
      if (chunks.length > 0) this.#changes++;
      this.#stats.unsyncedDropped += chunks.length;
    }
    // A storage that cannot punch now keeps the bytes: the chunks are missing all the same, and fetched again.
    if (this.#canPunchNow) {
      for (const i of chunks) {
        try {
          this.#punchChunk(i);
        } catch (err) {
          punchFailure ??= err;
        }
      }
    }
    return { dropped: chunks.length, punchFailure };
  }

  get complete(): boolean {
    return this.presence.complete;
  }

  /**
   * Whether every chunk overlapping [offset, offset+length) is present (no I/O, no waiting). A frontend asks
   * this on its hit path, so a yes also marks those chunks as used now (LRU; a typed-array store).
   */
  isPresent(offset: number, length: number): boolean {
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return true;
    for (let i = r[0]; i <= r[1]; i++) if (!this.presence.has(i)) return false;
    this.clock.touch(r[0], r[1]);
    return true;
  }

  #allPresent(first: number, last: number): boolean {
    for (let i = first; i <= last; i++) if (!this.presence.has(i)) return false;
    return true;
  }

  /**
   * Forgets the chunks overlapping [offset, offset+length) whose bytes the storage no longer holds (the kernel
   * saw a hole there). A chunk written since the kernel looked (a wider run's) is kept: forgetting it would
   * fetch it again for nothing.
   */
  invalidate(offset: number, length: number): void {
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return;
    for (let i = r[0]; i <= r[1]; i++) {
      if (!this.presence.has(i) || this.#inFlight.has(i)) continue;
      if (this.storage.holdsData?.(this.table.entries[i].plainOffset, this.table.entries[i].plainSize)) continue;
      this.presence.clear(i);
      this.#addCached(-this.table.entries[i].plainSize);
    }
  }

  #addCached(delta: number): void {
    this.#cachedBytes += delta;
    this.#opts.onCachedChange?.(delta);
  }

  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /** Whether culling can give this blob's space back (the storage punches holes). */
  get cullable(): boolean {
    // A complete blob may be one its frontend stopped watching: culled only if the frontend can watch it again.
    return this.#canPunchNow && !this.#closing.signal.aborted && (!this.presence.complete || this.onIncomplete !== null);
  }

  /** Whether the storage punches holes, and may do so now. */
  get #canPunchNow(): boolean {
    return this.storage.punch !== undefined && (this.storage.canPunch?.() ?? true);
  }

  /** The planner's view (cull-plan.ts): present chunks that no fetch is writing may go. */
  cullView(): CullView {
    return {
      ticks: this.clock.ticks,
      bytes: (i) => (this.presence.has(i) ? this.table.entries[i].plainSize : 0),
      cullable: (i) => this.presence.has(i) && !this.#inFlight.has(i) && !this.#asked.has(i),
    };
  }

  /**
   * Culls these chunks: each one's presence bit is cleared FIRST (a reader from then on sees a miss and
   * fetches it again), then its hole is punched. Chunks that are missing or being fetched are skipped.
   * Returns the bytes freed. Synchronous, so no ensure() runs between a chunk's check and its hole.
   * @throws SysError when the storage cannot punch (the chunks cleared so far stay cleared: refetched later)
   */
  evict(chunks: readonly number[]): number {
    const entries = this.table.entries;
    let freed = 0;
    try {
      for (const i of chunks) {
        if (!this.presence.has(i) || this.#inFlight.has(i) || this.#asked.has(i)) continue;
        this.#forget(i);
        freed += entries[i].plainSize;
        this.#stats.evictions++;
        this.#stats.evictedBytes += entries[i].plainSize;
        this.#punchChunk(i);
      }
    } finally {
      if (freed > 0) this.#changes++;
    }
    return freed;
  }

  /** Makes present chunk `i` missing; a complete blob's frontend watches it again first. */
  #forget(i: number): void {
    if (this.presence.complete) this.onIncomplete?.();
    this.presence.clear(i);
    this.#unsynced.delete(i);
    this.#addCached(-this.table.entries[i].plainSize);
  }

  /** Gives chunk `i`'s space back: a hole, whose read is a miss. */
  #punchChunk(i: number): void {
    const r = chunkPunchRange(this.table, i);
    this.storage.punch!(r.offset, r.length);
  }

  /**
   * Makes every chunk overlapping [offset, offset+length) present; rejects if the bytes cannot be had. The
   * asked chunks are not culled while this runs (a whole-file or read-ahead fetch larger than the budget would
   * otherwise push out the chunks its reader waits for), and are touched last, so they are read before any cull
   * picks them.
   */
  async ensure(offset: number, length: number): Promise<void> {
    this.onAccess?.(offset, length);
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return;
    this.#ask(r[0], r[1], 1);
    try {
      this.clock.touch(r[0], r[1]);
      await this.#ensureOnce(r[0], r[1], offset);
      // A chunk that went while we waited (an external punch, a failed sync's drop) is fetched again.
      for (let round = 2; !this.#allPresent(r[0], r[1]); round++) {
        if (round > 5) throw new EodError("DAEMON", `Chunks ${r[0]}..${r[1]} of blob ${this.id} went missing again and again before they could be read`);
        await this.#ensureOnce(r[0], r[1], offset);
      }
      this.clock.touch(r[0], r[1]);
    } finally {
      this.#ask(r[0], r[1], -1);
    }
  }

  /**
   * Where the files lie in this blob (from the bootstrap: image/file-extents.ts), for a table cut by size (a
   * layer's seek index): a miss in a small file then fetches all of it, as the layout shows files elsewhere.
   */
  setFiles(files: FileExtents): void {
    this.#misses.files = files;
  }

  /** Whether setFiles() was called (the files of a blob's tar are the same in every image that mounts it). */
  get knowsFiles(): boolean {
    return this.#misses.files !== null;
  }

  /** Counts readers of chunks first..last up (`by` 1) or down (-1). */
  #ask(first: number, last: number, by: 1 | -1): void {
    for (let i = first; i <= last; i++) {
      const n = (this.#asked.get(i) ?? 0) + by;
      if (n > 0) this.#asked.set(i, n);
      else this.#asked.delete(i);
    }
  }

  async #ensureOnce(first: number, last: number, at: number): Promise<void> {
    this.#closing.signal.throwIfAborted();
    let missing = false;
    let waiting = false;
    for (let i = first; i <= last; i++) {
      if (this.presence.has(i)) continue;
      if (this.#inFlight.has(i)) waiting = true;
      else missing = true;
    }
    if (!missing && !waiting) { this.#stats.hits++; return; }
    this.#stats.misses++;
    this.#misses.plan(first, last, missing, (run, readahead) => {
      if (readahead) this.#stats.readaheads++;
      // Its chunks' promises carry the outcome; a failed read-ahead is counted in errors, and a reader
      // that needs those chunks fetches them again.
      this.#start(run).catch(() => {});
    }, at);
    // Each chunk on its own: the first ones of a long run may be in while the rest is still arriving.
    const waits: Array<Promise<void>> = [];
    for (let i = first; i <= last; i++) {
      const p = this.presence.has(i) ? undefined : this.#inFlight.get(i);
      if (p) waits.push(p);
    }
    await Promise.all(waits);
  }

  /**
   * Fetches these chunks (a prefetch list, in priority order) unless present or in flight: consecutive chunks
   * that are contiguous in the remote form go in one request, and each request waits for a slot of `lane`,
   * so prefetching never holds more than the lane's slots of the remote. Failures are counted, not thrown:
   * a reader that needs a chunk fetches it on demand. A piece of a gzip checkpoint's span decodes from the
   * checkpoint: the same request brings the earlier pieces of its span, which are kept (piecesToFetch).
   */
  async prefetch(chunks: readonly number[], lane: Semaphore): Promise<void> {
    const entries = this.table.entries;
    const listed = new Set<number>();
    for (const i of chunks) {
      if (i < 0 || i >= entries.length || !this.#wanted(i)) continue;
      for (let j = piecesToFetch(entries, i, i, this.#wanted)[0]; j <= i; j++) listed.add(j);
    }
    await Promise.all(groupRuns(entries, listed, this.#opts.prefetchFetch).map(async (planned) => {
      const release = await lane.acquire();
      try { // a demand miss may have fetched some of these meanwhile: fetch what is still wanted
        const still: number[] = [];
        for (let i = planned.first; i <= planned.last; i++) if (this.#wanted(i)) still.push(i);
        for (const run of groupRuns(entries, still, this.#opts.prefetchFetch)) {
          this.#stats.prefetches++;
          await this.#start(run).catch(() => {});
        }
      } finally {
        release();
      }
    }));
  }

  readonly #wanted = (i: number): boolean => !this.presence.has(i) && !this.#inFlight.has(i);

  /**
   * Stops the blob: new fetches are refused, those in flight are aborted, and this resolves once every one of
   * them has settled, so that no write outlives the storage's descriptors (a reused fd number would take it).
   */
  async close(): Promise<void> {
    this.#closing.abort(new EodError("DAEMON", `Blob ${this.id} was closed`));
    await this.settled();
  }

  /** Resolves once no fetch of this blob is in flight (read-ahead and prefetch included). */
  async settled(): Promise<void> {
    while (this.#inFlight.size) await Promise.allSettled([...this.#inFlight.values()]);
  }

  /**
   * Fetches a run; each of its chunks is in flight (and awaited by readers) on its own, and becomes present as
   * soon as its bytes have arrived and passed verification: a remote that streams (onData) lets the first
   * chunks of a long run serve readers before the rest has arrived.
   */
  #start(run: FetchRun): Promise<void> {
    if (this.#closing.signal.aborted) return Promise.reject(this.#closing.signal.reason);
    const settle = new Map<number, (err?: unknown) => void>();
    for (let i = run.first; i <= run.last; i++) {
      const p = new Promise<void>((resolve, reject) => settle.set(i, (err) => (err === undefined ? resolve() : reject(err))));
      p.catch(() => {}); // a chunk nobody waits for may fail unobserved
      this.#inFlight.set(i, p);
    }
    this.#runs++;
    return this.#fetchRun(run, settle).finally(() => { this.#runs--; });
  }

  async #fetchRun(run: FetchRun, settle: Map<number, (err?: unknown) => void>): Promise<void> {
    const entries = this.table.entries;
    let plainTotal = 0;
    for (let i = run.first; i <= run.last; i++) plainTotal += entries[i].plainSize;
    const sync = inflatedByRun(this.table, run.first, run.last) <= SYNC_DECODE_MAX;
    const filled = (i: number) => { // present now: release its readers
      if (this.#inFlight.get(i) && settle.has(i)) this.#inFlight.delete(i);
      settle.get(i)?.();
      settle.delete(i);
    };
    let failure: unknown;
    const release = await this.#opts.budget.acquire(run.remoteLength + plainTotal);
    const into = this.#opts.receiveBuffers?.take(run.remoteLength); // every attempt's answer, one after another
    try {
      for (let attempt = 1; ; attempt++) {
        const chunks: Array<Promise<void>> = [];
        try {
          let next = run.first; // chunks before it are filled or being filled from this answer
          let answer: Uint8Array | null = null;
          const take = (bytes: Uint8Array, received: number) => {
            if (bytes !== answer) { answer = bytes; next = run.first; } // a retried answer starts over
            const arrived = (i: number) => entries[i].remoteOffset - run.remoteOffset + entries[i].remoteSize <= received;
            while (next <= run.last) {
              if (this.presence.has(next)) { filled(next++); continue; } // written by an earlier attempt
              const last = this.#decodeNow(next, run.last, arrived);
              if (last < 0) break;
              const e = entries[last];
              const at = e.remoteOffset - run.remoteOffset;
              this.#fill(next, last, bytes.subarray(at, at + e.remoteSize), sync).forEach((p, k) => {
                const i = next + k;
                const fill = p.then(() => filled(i));
                // Observed now: a fill that fails (a corrupt chunk) while the rest of the answer is still streaming
                // would otherwise be an unhandled rejection until readRange() returns, and that kills the daemon.
                // Its error still fails this attempt below (settleAll).
                fill.catch(() => {});
                chunks.push(fill);
              });
              next = last + 1;
            }
          };
          this.#stats.fetches++;
          const remote = await this.#source.remote.readRange(this.#source.path, run.remoteOffset, run.remoteLength, {
            signal: this.#closing.signal, onData: take, into,
          });
          this.#stats.fetchedBytes += remote.length;
          take(remote, remote.length); // what onData did not see (a remote that does not stream)
          await settleAll(chunks);
          if (into) this.#opts.receiveBuffers!.give(into); // no fill reads it any more (a failed fetch's is dropped)
          this.#changes++;
          return;
        } catch (err) {
          await Promise.allSettled(chunks); // no fill of this attempt may still be writing
          if (err instanceof EodError && err.code === "DIGEST_MISMATCH") {
            this.#stats.corrupt++;
            if (attempt < this.#opts.verifyAttempts) continue;
          }
          this.#stats.errors++;
          failure = err;
          throw err;
        }
      }
    } finally {
      release();
      for (const [i, done] of settle) {
        this.#inFlight.delete(i);
        done(this.presence.has(i) ? undefined : failure ?? new EodError("DAEMON", `Chunk ${i} of blob ${this.id} was not fetched`));
      }
    }
  }

  /**
   * The last chunk to decode now in one pass with missing chunk `first` (whose bytes and those of the chunks to
   * `runLast` are arriving: `arrived`), or -1 to wait for more of the answer. The missing pieces of first's
   * gzip checkpoint in the run decode together once all their bytes are in; before that, those that are in
   * through the last one a reader waits for decode at once (the reader does not wait for the rest of the span).
   */
  #decodeNow(first: number, runLast: number, arrived: (i: number) => boolean): number {
    if (!arrived(first)) return -1;
    let end = first;
    while (end < runLast && decodesWithPrevious(this.table, end + 1) && !this.presence.has(end + 1)) end++;
    if (arrived(end)) return end;
    let asked = -1;
    for (let i = first; i < end && arrived(i); i++) if (this.#asked.has(i)) asked = i;
    return asked;
  }

  /**
   * Decodes chunks first..last in one pass (chunk-fill.ts), and writes each one that matched its digest and
   * marks it present: one promise per chunk.
   */
  #fill(first: number, last: number, bytes: Uint8Array, sync: boolean): Array<Promise<void>> {
    this.#stats.inflatedBytes += inflatedBy(this.table, last);
    const decoded = decodeChunks(this.#fillTarget, first, last, bytes, sync);
    const fills: Array<Promise<void>> = [];
    for (let i = first; i <= last; i++) fills.push(decoded.then((chunks) => this.#write(i, chunks[i - first])));
    return fills;
  }

  /** Writes chunk `i`'s verified bytes (its error thrown if it has none) and marks it present. */
  async #write(i: number, v: VerifiedChunk): Promise<void> {
    for (;;) {
      const failures = this.#syncFailures;
      await writeChunk(this.#fillTarget, i, v);
      if (failures === this.#syncFailures) break; // else a sync failed while this was written: write it again
    }
    if (this.presence.has(i)) return;
    this.presence.set(i);
    if (!this.storage.dataIsPresence) this.#unsynced.set(i, ++this.#fills);
    if (this.presence.complete) this.onComplete?.();
    this.clock.touch(i, i);
    this.#addCached(this.table.entries[i].plainSize); // may cull (the core's budget): never this chunk, it is in flight
  }

  stats(): BlobStats {
    return {
      id: this.id, chunks: this.table.entries.length, presentChunks: this.presence.present, totalBytes: this.#totalBytes,
      cachedBytes: this.#cachedBytes, inFlight: this.#runs, ...this.#stats,
    };
  }
}

/** Like Promise.all, but settles only after every promise has (a fill still running holds bytes the memory budget counts). */
async function settleAll(ps: Array<Promise<void>>): Promise<void> {
  const results = await Promise.allSettled(ps);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}
