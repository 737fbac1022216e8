// Eviction by chunk, for blobs stored in our own sparse files: a chunk's presence bit is cleared first, then
// its hole is punched. The budget counts the bytes of present chunks across every blob of the cache directory:
// open blobs report each change, blobs no mount uses ("resting") are counted from their presence maps.
import fs from "node:fs";
import path from "node:path";
import { decodeChunkTable, encodeChunkTable, type ChunkTable } from "../image/chunk-table.ts";
import type { BlobCache } from "./blob-cache.ts";
import { chunkPunchRange, planCull, type CullView } from "./cull-plan.ts";
import type { Eviction, EvictionStep } from "./eviction.ts";
import { nowTick } from "./lru.ts";
import { PresenceMap } from "./presence.ts";
import { punchHole } from "../sys/seek.ts";
import { sha256 } from "../util/sha256.ts";

interface Resting {
  table: ChunkTable;
  digest: Uint8Array;
  presence: PresenceMap;
  ticks: Uint32Array;
}

export class ChunkEviction implements Eviction {
  readonly costly = false;
  readonly #dir: string;
  readonly #open: () => Iterable<BlobCache>;
  #openBytes = 0;
  /** Bytes of blobs not open, by id; null until first needed (a scan of blobs/*.present). */
  #resting: Map<string, number> | null = null;
  #restingSum = 0;

  /**
   * @param dir the cache directory (blobs under `<dir>/blobs`)
   * @param open the blobs open in the core right now
   */
  constructor(dir: string, open: () => Iterable<BlobCache>) {
    this.#dir = dir;
    this.#open = open;
  }

  cachedBytes(): number {
    return this.#openBytes + this.#restingSum;
  }

  get restingBytes(): number {
    return this.#restingSum;
  }

  get restingBlobs(): number {
    return this.#resting?.size ?? 0;
  }

  /** A blob was opened with `bytes` present: it is counted through its changes from now on. */
  opened(id: string, bytes: number): void {
    this.#setResting(id, 0);
    this.#openBytes += bytes;
  }

  /** A blob was closed (its map persisted) with `bytes` present; `reopened` when a new mount opened it meanwhile. */
  closed(id: string, bytes: number, reopened: boolean): void {
    this.#openBytes -= bytes;
    if (!reopened) this.#setResting(id, bytes);
  }

  changed(delta: number): void {
    this.#openBytes += delta;
  }

  plan(need: number, maxTick: number): EvictionStep[] | null {
    const open = [...this.#open()].filter((b) => b.cullable);
    const restingIds = [...this.scanResting()].filter(([, n]) => n > 0).map(([id]) => id);
    if (open.length === 0 && restingIds.length === 0) return null;
    const resting = restingIds.map((id) => this.#loadResting(id));
    // Resting blobs first: on equal ticks their chunks go before those of blobs someone reads.
    const views: CullView[] = [...resting.map((r) => restingView(r)), ...open.map((b) => b.cullView())];
    return planCull(views, need, maxTick).map((pick) => () => {
      const bytes = pick.blob >= resting.length
        ? open[pick.blob - resting.length].evict(pick.chunks)
        : this.#evictResting(restingIds[pick.blob], resting[pick.blob]!, pick.chunks);
      return { bytes, chunks: pick.chunks.length, objects: 0, refused: 0 };
    });
  }

  /** Counts a resting blob's bytes (0: forget it), keeping the sum (checked on every fill). */
  #setResting(id: string, bytes: number): void {
    if (!this.#resting) return; // not scanned yet: the scan will count it
    this.#restingSum += bytes - (this.#resting.get(id) ?? 0);
    if (bytes > 0) this.#resting.set(id, bytes);
    else this.#resting.delete(id);
  }

  /** Bytes of every blob that has a presence map and is not open (scanned once, then kept up to date). */
  scanResting(): Map<string, number> {
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
      const digest = sha256(encodeChunkTable(table));
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
        const p = chunkPunchRange(r.table, i);
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
