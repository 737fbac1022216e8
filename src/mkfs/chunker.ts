// The data pass of a lazy image: cuts files into chunks, drops holes and all-zero chunks, hashes the rest on
// the thread pool (WebCrypto digests run off the main thread) while the next chunks are read, and settles
// them strictly in order, so dedup decisions and blob placement are the same as a sequential pass would make.
import { webcrypto } from "node:crypto";
import type { ChunkAddr } from "../erofs/chunk.ts";
import type { BlobWriter } from "./blob-writer.ts";
import { BufferPool } from "../util/buffer-pool.ts";
import { isZero, overlapsData, type SourceFile } from "./source-file.ts";

export interface ChunkStats {
  chunks: number;
  uniqueChunks: number;
  holeChunks: number;
  dedupSavedBytes: number;
}

interface Pending {
  list: Array<ChunkAddr | null>;
  index: number;
  buf: Buffer;
  digest: Promise<ArrayBuffer>;
}

export class Chunker {
  readonly stats: ChunkStats = { chunks: 0, uniqueChunks: 0, holeChunks: 0, dedupSavedBytes: 0 };
  readonly #writer: BlobWriter;
  readonly #chunkSize: number;
  readonly #deviceId: number;
  readonly #window: number;
  readonly #pool: BufferPool;
  readonly #queue: Pending[] = [];
  readonly #seen = new Map<string, number>(); // sha256 (latin1) -> first block in the blob

  constructor(writer: BlobWriter, opts: { chunkSize: number; deviceId: number; window?: number }) {
    this.#writer = writer;
    this.#chunkSize = opts.chunkSize;
    this.#deviceId = opts.deviceId;
    this.#window = opts.window ?? 8;
    // A buffer comes back once the blob writer has written it (or it was a dup); at most the read-ahead
    // window and the writer's queue are out at once, so that much is worth keeping.
    this.#pool = new BufferPool(2 * this.#window * opts.chunkSize);
    writer.onWritten = (plain) => this.#pool.give(plain);
  }

  /**
   * Reads `f` chunk by chunk. The returned list is filled in as chunks settle; it is complete after
   * finish() (or once later files have pushed this one's chunks out of the window).
   */
  async addFile(f: SourceFile, sparse: boolean): Promise<Array<ChunkAddr | null>> {
    const size = f.size;
    const ranges = sparse ? f.dataRanges() : null;
    const list = new Array<ChunkAddr | null>(Math.ceil(size / this.#chunkSize)).fill(null);
    for (let index = 0, off = 0; off < size; index++, off += this.#chunkSize) {
      const len = Math.min(this.#chunkSize, size - off);
      this.stats.chunks++;
      if (ranges && !overlapsData(ranges, off, off + len)) { this.stats.holeChunks++; continue; }
      const buf = this.#pool.take(len);
      f.readExact(buf, off);
      if (isZero(buf)) { this.stats.holeChunks++; this.#pool.give(buf); continue; }
      this.#queue.push({ list, index, buf, digest: webcrypto.subtle.digest("SHA-256", buf) });
      while (this.#queue.length > this.#window) await this.#settle();
    }
    return list;
  }

  async #settle(): Promise<void> {
    const p = this.#queue.shift()!;
    const digest = new Uint8Array(await p.digest);
    const key = Buffer.from(digest).toString("latin1");
    let startBlk = this.#seen.get(key);
    if (startBlk === undefined) {
      startBlk = await this.#writer.add(p.buf, digest);
      this.#seen.set(key, startBlk);
      this.stats.uniqueChunks++;
    } else {
      this.stats.dedupSavedBytes += p.buf.length;
      this.#pool.give(p.buf);
    }
    p.list[p.index] = { startBlk, deviceId: this.#deviceId };
  }

  /** Settles every queued chunk. */
  async finish(): Promise<void> {
    while (this.#queue.length) await this.#settle();
  }

  /** After a failure: lets queued digests settle unobserved. */
  abort(): void {
    for (const p of this.#queue) p.digest.catch(() => {});
    this.#queue.length = 0;
  }
}
