// Worker threads for the per-chunk CPU work of a build: SHA-256 digests and compression (zstd, lz4). Chunks come
// from `pool`, whose memory is shared with the workers, so handing one over copies nothing; the main thread
// keeps only the tar reader, dedup decisions and writes. On a 2-core machine this is what lets the layer's
// decompression, the chunk work and the main thread run at once.
import os from "node:os";
import { Worker } from "node:worker_threads";
import { BufferPool } from "../util/buffer-pool.ts";
import type { Compression } from "../image/chunk-table.ts";
import type { ChunkJob, ChunkResult } from "./chunk-worker.ts";

type Waiter = { resolve: (out: Uint8Array) => void; reject: (err: Error) => void };
type Slot = { w: Worker; busy: number; batch: ChunkJob[]; ready: boolean };

/** Chunks in flight for a chunk size: what a chunker window and a blob writer queue each hold (~32 MiB each). */
export function inFlightFor(chunkSize: number): number {
  return Math.max(2, Math.min(16, Math.floor((32 << 20) / chunkSize)));
}

/** Chunk workers for a build of `chunkSize` chunks; their pool holds what the chunker window and writer queue hold. */
export function chunkWorkersFor(chunkSize: number): ChunkWorkers {
  return new ChunkWorkers(Math.max(2 * inFlightFor(chunkSize) * chunkSize, 32 << 20));
}

export class ChunkWorkers {
  /** Chunk buffers the workers read in place. */
  readonly pool: BufferPool;
  readonly #workers: Slot[] = [];
  readonly #waiting = new Map<number, Waiter>();
  #nextId = 0;
  #failed: Error | null = null;
  #flushing: NodeJS.Immediate | null = null;

  /**
   * `retain`: pooled bytes kept when idle (see BufferPool). `threads` default: one per core but the main
   * thread's, at most 4 (each costs memory, see docs/benchmarks.md; on 2 cores a second one was no faster:
   * the main thread and the layer's decompression need the other core).
   */
  constructor(retain: number, threads = Math.min(4, os.availableParallelism() - 1)) {
    this.pool = new BufferPool(retain, { shared: true });
    for (let i = 0; i < Math.max(1, threads); i++) {
      const w = new Worker(new URL("./chunk-worker-entry.mjs", import.meta.url));
      const slot: Slot = { w, busy: 0, batch: [], ready: false };
      w.on("message", (rs: ChunkResult[] | "ready") => {
        if (rs === "ready") { // booted: from now on referenced only while it has work (#send)
          slot.ready = true;
          if (slot.busy === 0 && !this.#failed) w.unref(); // a closing pool keeps it referenced until it exits
          return;
        }
        for (const r of rs) this.#settle(slot, r);
      });
      w.on("error", (err) => this.#fail(err));
      w.on("exit", (code) => this.#fail(new Error(`chunk worker exited (${code})`)));
      // Referenced while it boots (until "ready"), and stopped by a message it takes once loaded (close()), so
      // neither the process's exit nor close() cuts a thread off while it loads its modules.
      this.#workers.push(slot);
    }
  }

  /** SHA-256 of a chunk from `pool` (which must not change until this settles). */
  digest(buf: Uint8Array): Promise<Uint8Array> {
    return this.#send((id) => ({ id, op: "digest", buf }));
  }

  /** The remote form of a chunk from `pool`, as compressChunkSync() makes it. */
  compress(buf: Uint8Array, kind: Compression, level?: number): Promise<Uint8Array> {
    return this.#send((id) => ({ id, op: "compress", buf, kind, level }));
  }

  /** Stops the threads (jobs still waiting are rejected). */
  async close(): Promise<void> {
    const ws = this.#workers.splice(0);
    if (this.#flushing) clearImmediate(this.#flushing);
    this.#fail(new Error("chunk workers closed"));
    // Asked, not terminated: a thread still booting takes the message once it has loaded (see the constructor).
    // Referenced again: awaiting an unreferenced worker's exit would not keep the process alive meanwhile.
    await Promise.all(ws.map((s) => {
      s.w.ref();
      const exited = new Promise<void>((resolve) => s.w.once("exit", () => resolve()));
      s.w.postMessage("close");
      return exited;
    }));
  }

  #send(make: (id: number) => ChunkJob): Promise<Uint8Array> {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    const job = make(id);
    if (!(job.buf.buffer instanceof SharedArrayBuffer)) return Promise.reject(new TypeError("chunk not from the shared pool"));
    // The least busy thread: a slow zstd chunk does not hold up the digests queued behind it.
    const slot = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
    if (slot.busy++ === 0) slot.w.ref();
    // Jobs go out in batches, once the main thread yields: one message (and one thread wake-up) for all the
    // chunks a piece of the tar stream made, instead of one each.
    slot.batch.push(job);
    this.#flushing ??= setImmediate(() => this.#flush());
    return new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
  }

  #flush(): void {
    this.#flushing = null;
    for (const slot of this.#workers) {
      if (slot.batch.length) slot.w.postMessage(slot.batch);
      slot.batch = [];
    }
  }

  #settle(slot: Slot, r: ChunkResult): void {
    if (--slot.busy === 0 && !this.#failed && slot.ready) slot.w.unref(); // a closing pool keeps its threads referenced until they exit
    const waiter = this.#waiting.get(r.id);
    if (!waiter) return;
    this.#waiting.delete(r.id);
    if ("error" in r) waiter.reject(new Error(r.error));
    else waiter.resolve(r.out);
  }

  #fail(err: Error): void {
    this.#failed ??= err;
    for (const w of this.#waiting.values()) w.reject(this.#failed);
    this.#waiting.clear();
  }
}
