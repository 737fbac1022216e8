// The data pass of a lazy image, for directory and layer builds alike: file bodies are cut into chunks (read
// from a file it can seek in, or taken from a stream as they pass), holes and all-zero chunks are dropped,
// the rest are hashed off the main thread while the next chunks are read, and settled strictly in order, so
// dedup decisions and blob placement are the same as a sequential pass would make. A chunk already stored
// (by this blob, or by a lower layer's: `index` is shared) is referenced where it is; a new one goes into the
// blob, which is opened only when its first chunk arrives, so a layer without new data adds no blob.
import type { ChunkAddr } from "../erofs/chunk.ts";
import { EodError } from "../errors.ts";
import { BufferPool } from "../util/buffer-pool.ts";
import { sha256OffThread } from "../util/sha256.ts";
import type { BlobWriter } from "./blob-writer.ts";
import { isZero, overlapsData, type SourceFile } from "./source-file.ts";

export interface ChunkStats {
  chunks: number;
  uniqueChunks: number;
  holeChunks: number;
  dedupSavedBytes: number;
}

/** Chunks stored so far, across layers: sha256 (latin1) -> where. */
export type ChunkIndex = Map<string, ChunkAddr>;

export interface ChunkerOptions {
  chunkSize: number;
  /** Chunks hashed ahead of the one being settled (each holds a chunk-sized buffer). */
  window: number;
  /** Chunks stored so far (a fresh map for a single blob). */
  index: ChunkIndex;
  /** Opens the blob new chunks go into, at the first one; returns its writer and device id. */
  openBlob(): { writer: BlobWriter; deviceId: number };
  /** Chunk memory (default a private pool of `poolBytes`) and digests (default SHA-256 on the thread pool). */
  pool?: BufferPool;
  poolBytes?: number;
  digest?: (buf: Uint8Array) => Promise<Uint8Array>;
}

interface Pending {
  list: Array<ChunkAddr | null>;
  index: number;
  buf: Buffer;
  digest: Promise<Uint8Array>;
}

export class Chunker {
  readonly stats: ChunkStats = { chunks: 0, uniqueChunks: 0, holeChunks: 0, dedupSavedBytes: 0 };
  readonly #opts: ChunkerOptions;
  readonly #pool: BufferPool;
  readonly #digest: (buf: Uint8Array) => Promise<Uint8Array>;
  readonly #queue: Pending[] = [];
  #blob: { writer: BlobWriter; deviceId: number } | null = null;

  constructor(opts: ChunkerOptions) {
    this.#opts = opts;
    // A buffer comes back once the blob writer has written it (or it was a dup): the window and the writer's
    // queue are what is out at once.
    this.#pool = opts.pool ?? new BufferPool(opts.poolBytes ?? 2 * opts.window * opts.chunkSize);
    this.#digest = opts.digest ?? sha256OffThread;
  }

  /** The blob writer, if a chunk was stored. */
  get blob(): BlobWriter | null {
    return this.#blob?.writer ?? null;
  }

  /**
   * Reads `f` chunk by chunk (skipping the holes of a sparse file). The returned list is filled in as chunks
   * settle; it is complete after finish().
   */
  async addFile(f: SourceFile, sparse: boolean): Promise<Array<ChunkAddr | null>> {
    const chunkSize = this.#opts.chunkSize;
    const ranges = sparse ? f.dataRanges() : null;
    const list: Array<ChunkAddr | null> = [];
    for (let index = 0, off = 0; off < f.size; index++, off += chunkSize) {
      const len = Math.min(chunkSize, f.size - off);
      if (ranges && !overlapsData(ranges, off, off + len)) {
        this.#hole(list);
        continue;
      }
      const buf = this.#pool.take(len);
      f.readExact(buf, off);
      await this.#push(list, index, buf);
    }
    return list;
  }

  /**
   * Consumes a file body of `size` bytes. The returned list is filled in as chunks settle; it is complete
   * after finish().
   * @throws EodError SOURCE_INVALID when the body has another length
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

  /** A chunk of nothing but zeros (or a hole): no data, read back as zeros. */
  #hole(list: Array<ChunkAddr | null>): void {
    this.stats.chunks++;
    this.stats.holeChunks++;
    list.push(null);
  }

  async #push(list: Array<ChunkAddr | null>, index: number, buf: Buffer): Promise<void> {
    if (isZero(buf)) {
      this.#pool.give(buf);
      return this.#hole(list);
    }
    this.stats.chunks++;
    list.push(null); // list[index], set when it settles
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
