// The data pass of one layer: file bodies arrive once, as a stream, and are cut into chunks as they pass.
// Like chunker.ts (which reads files it can seek in), holes and all-zero chunks are dropped, the rest is
// hashed on the thread pool and settled strictly in order. A chunk already stored, by this layer or any
// lower one, is referenced where it is; a new one goes into this layer's blob, which is created (and given
// the next device id) only when its first chunk arrives, so a layer without new data adds no blob.
import { webcrypto } from "node:crypto";
import type { ChunkAddr } from "../../erofs/chunk.ts";
import type { BlobWriter } from "../blob-writer.ts";
import { BufferPool } from "../../util/buffer-pool.ts";
import type { ChunkStats } from "../chunker.ts";
import { isZero } from "../source-file.ts";
import { EodError } from "../../errors.ts";

interface Pending {
  list: Array<ChunkAddr | null>;
  index: number;
  buf: Buffer;
  digest: Promise<Uint8Array>;
}

/** Chunks stored so far, across layers: sha256 (latin1) -> where. */
export type ChunkIndex = Map<string, ChunkAddr>;

export interface LayerChunkerOptions {
  chunkSize: number;
  /** Chunks hashed ahead of the one being settled (each holds a chunk-sized buffer). */
  window: number;
  index: ChunkIndex;
  /** Creates this layer's blob writer; returns it with its device id. */
  openBlob(): { writer: BlobWriter; deviceId: number };
  /** Chunk memory and digests (a build's chunk workers); default a private pool and WebCrypto. */
  pool?: BufferPool;
  digest?: (buf: Uint8Array) => Promise<Uint8Array>;
}

export class LayerChunker {
  readonly stats: ChunkStats = { chunks: 0, uniqueChunks: 0, holeChunks: 0, dedupSavedBytes: 0 };
  readonly #opts: LayerChunkerOptions;
  readonly #pool: BufferPool;
  readonly #digest: (buf: Uint8Array) => Promise<Uint8Array>;
  readonly #queue: Pending[] = [];
  #blob: { writer: BlobWriter; deviceId: number } | null = null;

  constructor(opts: LayerChunkerOptions) {
    this.#opts = opts;
    this.#pool = opts.pool ?? new BufferPool(Math.max(2 * opts.chunkSize, 32 << 20)); // what the writer's queue holds at most
    this.#digest = opts.digest ?? (async (buf) => new Uint8Array(await webcrypto.subtle.digest("SHA-256", buf)));
  }

  /** This layer's blob writer, if a chunk was stored. */
  get blob(): BlobWriter | null {
    return this.#blob?.writer ?? null;
  }

  /**
   * Consumes a file body of `size` bytes. The returned list is filled in as chunks settle; it is complete
   * after finish().
   */
  async addStream(body: AsyncIterable<Buffer>, size: number, where: string): Promise<Array<ChunkAddr | null>> {
    const chunkSize = this.#opts.chunkSize;
    // Grown as chunks arrive, not sized from the header: a hostile header may declare petabytes.
    const list: Array<ChunkAddr | null> = [];
    let index = 0;
    let buf: Buffer | null = null;
    let fill = 0;
    let total = 0;
    for await (const piece of body) {
      let at = 0;
      while (at < piece.length) {
        if (!buf) {
          buf = this.#pool.take(Math.min(chunkSize, size - index * chunkSize));
          fill = 0;
        }
        const n = Math.min(buf.length - fill, piece.length - at);
        piece.copy(buf, fill, at, at + n);
        fill += n;
        at += n;
        if (fill === buf.length) {
          await this.#push(list, index++, buf);
          buf = null;
        }
      }
      total += piece.length;
    }
    if (total !== size || buf) throw new EodError("SOURCE_INVALID", `${where}: body has ${total} bytes, header says ${size}`);
    return list;
  }

  async #push(list: Array<ChunkAddr | null>, index: number, buf: Buffer): Promise<void> {
    this.stats.chunks++;
    list.push(null); // list[index]: a hole unless settled below
    if (isZero(buf)) {
      this.stats.holeChunks++;
      this.#pool.give(buf);
      return;
    }
    this.#queue.push({ list, index, buf, digest: this.#digest(buf) });
    while (this.#queue.length > this.#opts.window) await this.#settle();
  }

  async #settle(): Promise<void> {
    const p = this.#queue.shift()!;
    const digest = await p.digest;
    const key = Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString("latin1");
    let addr = this.#opts.index.get(key);
    if (addr === undefined) {
      if (!this.#blob) {
        this.#blob = this.#opts.openBlob();
        this.#blob.writer.onWritten = (plain) => this.#pool.give(plain);
      }
      addr = { startBlk: await this.#blob.writer.add(p.buf, digest), deviceId: this.#blob.deviceId };
      this.#opts.index.set(key, addr);
      this.stats.uniqueChunks++;
    } else {
      this.stats.dedupSavedBytes += p.buf.length;
      this.#pool.give(p.buf);
    }
    p.list[p.index] = addr;
  }

  /** Settles every queued chunk. */
  async finish(): Promise<void> {
    while (this.#queue.length) await this.#settle();
  }

  /** After a failure: lets queued digests settle unobserved and closes the blob. */
  abort(): void {
    for (const p of this.#queue) p.digest.catch(() => {});
    this.#queue.length = 0;
    this.#blob?.writer.abort();
  }
}
