// One blob in the cache: its chunk table, its storage (the kernel form, sparse), which chunks are present,
// and the fetches in flight. ensure() is idempotent and safe to call concurrently: two faults on one chunk
// share one fetch, and bytes reach the storage only after their sha256 matched the chunk table.
import { webcrypto } from "node:crypto";
import { EodError } from "../errors.ts";
import { CHUNK_FLAG_RAW, type ChunkTable } from "../image/chunk-table.ts";
import { decompressChunkAsync } from "../image/codec.ts";
import type { Remote } from "../remote/remote.ts";
import { chunksOverlapping, planRuns, type FetchRun, type PlanOptions } from "./plan.ts";
import { PresenceMap } from "./presence.ts";
import type { BlobStorage } from "./storage.ts";
import type { ByteBudget } from "./budget.ts";

export interface BlobSourceRef {
  remote: Remote;
  /** Path of the blob's remote form relative to the remote (e.g. "blobs/<id>"). */
  path: string;
}

export interface BlobCacheOptions extends PlanOptions {
  /** Fetch attempts when the remote answers with bytes that fail verification. */
  verifyAttempts: number;
  budget: ByteBudget;
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
  fetches: number;
  misses: number;
  hits: number;
  inFlight: number;
  corrupt: number;
  errors: number;
}

export class BlobCache {
  readonly id: string;
  readonly table: ChunkTable;
  readonly storage: BlobStorage;
  readonly presence: PresenceMap;
  readonly #source: BlobSourceRef;
  readonly #opts: BlobCacheOptions;
  readonly #inFlight = new Map<number, Promise<void>>();
  #dirty = false;
  readonly #stats = { fetchedBytes: 0, fetches: 0, misses: 0, hits: 0, corrupt: 0, errors: 0 };
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
    for (let i = 0; i < table.entries.length; i++) if (presence.has(i)) this.#cachedBytes += table.entries[i].plainSize;
  }

  /** The remote the blob is fetched from (a later mount of another image may bring a better one). */
  get source(): BlobSourceRef {
    return this.#source;
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  /** Marks the current presence as persisted (called by the flusher after a sync). */
  markClean(): void {
    this.#dirty = false;
  }

  get complete(): boolean {
    return this.presence.complete;
  }

  /** Whether every chunk overlapping [offset, offset+length) is present (no I/O, no waiting). */
  isPresent(offset: number, length: number): boolean {
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return true;
    for (let i = r[0]; i <= r[1]; i++) if (!this.presence.has(i)) return false;
    return true;
  }

  /** Forgets the chunks overlapping [offset, offset+length): the storage says their bytes are gone. */
  invalidate(offset: number, length: number): void {
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return;
    for (let i = r[0]; i <= r[1]; i++) {
      if (!this.presence.has(i) || this.#inFlight.has(i)) continue;
      this.presence.clear(i);
      this.#cachedBytes -= this.table.entries[i].plainSize;
    }
  }

  /** Makes every chunk overlapping [offset, offset+length) present; rejects if the bytes cannot be had. */
  async ensure(offset: number, length: number): Promise<void> {
    const r = chunksOverlapping(this.table.entries, offset, length);
    if (!r) return;
    const [first, last] = r;
    const waits = new Set<Promise<void>>();
    let missing = false;
    for (let i = first; i <= last; i++) {
      if (this.presence.has(i)) continue;
      const p = this.#inFlight.get(i);
      if (p) waits.add(p);
      else missing = true;
    }
    if (!missing && waits.size === 0) { this.#stats.hits++; return; }
    this.#stats.misses++;
    if (missing) {
      const wanted = (i: number) => !this.presence.has(i) && !this.#inFlight.has(i);
      for (const run of planRuns(this.table.entries, first, last, wanted, this.#opts)) {
        const p = this.#fetchRun(run);
        for (let i = run.first; i <= run.last; i++) this.#inFlight.set(i, p);
        waits.add(p);
      }
    }
    await Promise.all(waits);
  }

  async #fetchRun(run: FetchRun): Promise<void> {
    const plainTotal = this.table.entries.slice(run.first, run.last + 1).reduce((n, e) => n + e.plainSize, 0);
    const release = await this.#opts.budget.acquire(run.remoteLength + plainTotal);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const remote = await this.#source.remote.readRange(this.#source.path, run.remoteOffset, run.remoteLength);
          this.#stats.fetches++;
          this.#stats.fetchedBytes += remote.length;
          const plains = await Promise.all(this.#decodeRun(run, remote));
          for (let i = run.first; i <= run.last; i++) await this.storage.write(this.table.entries[i].plainOffset, plains[i - run.first]);
          for (let i = run.first; i <= run.last; i++) {
            if (!this.presence.has(i)) this.#cachedBytes += this.table.entries[i].plainSize;
            this.presence.set(i);
          }
          this.#dirty = true;
          return;
        } catch (err) {
          if (err instanceof EodError && err.code === "DIGEST_MISMATCH") {
            this.#stats.corrupt++;
            if (attempt < this.#opts.verifyAttempts) continue;
          }
          this.#stats.errors++;
          throw err;
        }
      }
    } finally {
      release();
      for (let i = run.first; i <= run.last; i++) this.#inFlight.delete(i);
    }
  }

  /** Splits a fetched run into chunks, decompresses and verifies each (on the thread pool). */
  #decodeRun(run: FetchRun, remote: Uint8Array): Array<Promise<Uint8Array>> {
    const out: Array<Promise<Uint8Array>> = [];
    for (let i = run.first; i <= run.last; i++) {
      const e = this.table.entries[i];
      const at = e.remoteOffset - run.remoteOffset;
      const bytes = remote.subarray(at, at + e.remoteSize);
      const what = `chunk ${i} of blob ${this.id}`;
      out.push((async () => {
        const plain = e.flags & CHUNK_FLAG_RAW ? bytes : await decompressChunkAsync(this.table.compression, bytes, e.plainSize, what);
        const digest = new Uint8Array(await webcrypto.subtle.digest("SHA-256", plain));
        if (!Buffer.from(digest).equals(e.digest)) throw new EodError("DIGEST_MISMATCH", `Digest mismatch in ${what} from ${this.#source.remote.location}`);
        return plain;
      })());
    }
    return out;
  }

  stats(): BlobStats {
    return {
      id: this.id, chunks: this.table.entries.length, presentChunks: this.presence.present, totalBytes: this.#totalBytes,
      cachedBytes: this.#cachedBytes, inFlight: new Set(this.#inFlight.values()).size, ...this.#stats,
    };
  }
}
