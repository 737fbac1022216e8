// Appends chunks to one blob: assigns each its block-aligned place in the kernel form at once, compresses it
// on the thread pool, and writes the remote form strictly in order. At most `maxInFlight` chunks are held in
// memory, whatever the size of the tree.
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import { CHUNK_FLAG_RAW, type ChunkEntry, type ChunkTable, type Compression } from "../image/chunk-table.ts";
import { compressChunk } from "../image/codec.ts";

export interface BlobWriterOptions {
  compression: Compression;
  level?: number;
  blkSzBits: number;
  maxInFlight?: number;
  /** Compresses a chunk (default compressChunk() on the thread pool; a build may use its chunk workers). */
  compress?: (plain: Uint8Array) => Promise<Uint8Array>;
}

interface Pending {
  entry: ChunkEntry;
  plain: Uint8Array;
  compressed: Promise<Uint8Array>;
}

export class BlobWriter {
  readonly #fd: number;
  readonly #opts: Required<Omit<BlobWriterOptions, "compress">>;
  readonly #compress: (plain: Uint8Array) => Promise<Uint8Array>;
  readonly #entries: ChunkEntry[] = [];
  readonly #queue: Pending[] = [];
  readonly #hash: Hash = createHash("sha256");
  #plainEnd = 0;
  #remoteEnd = 0;
  /** Called with each chunk's plain bytes once written, so their buffer can be reused. */
  onWritten: (plain: Uint8Array) => void = () => {};
  /**
   * Called after each append with the remote form's new length, and the appended bytes when they are the
   * chunk's own (compressed) memory, which nothing else reuses; null when they are the plain buffer.
   */
  onAppend: (remoteEnd: number, bytes: Uint8Array | null) => void = () => {};

  /** Writes the remote form to `remotePath` (created or truncated). */
  constructor(remotePath: string, opts: BlobWriterOptions) {
    this.#fd = fs.openSync(remotePath, "w", 0o644);
    const { compress, ...rest } = opts;
    this.#opts = { level: undefined as unknown as number, maxInFlight: 16, ...rest };
    this.#compress = compress ?? ((plain) => compressChunk(this.#opts.compression, plain, this.#opts.level));
  }

  /** Adds a chunk (`plain` must not change afterwards); returns its first block in the kernel form. */
  async add(plain: Uint8Array, digest: Uint8Array): Promise<number> {
    const blkSz = 2 ** this.#opts.blkSzBits;
    const entry: ChunkEntry = { plainOffset: this.#plainEnd, remoteOffset: 0, plainSize: plain.length, remoteSize: 0, flags: 0, digest };
    this.#plainEnd += Math.ceil(plain.length / blkSz) * blkSz;
    this.#entries.push(entry);
    this.#queue.push({ entry, plain, compressed: this.#compress(plain) });
    while (this.#queue.length > this.#opts.maxInFlight) await this.#writeOne();
    return entry.plainOffset / blkSz;
  }

  async #writeOne(): Promise<void> {
    const { entry, plain, compressed } = this.#queue.shift()!;
    let bytes = await compressed;
    if (this.#opts.compression !== "none" && bytes.length >= plain.length) {
      bytes = plain; // compression did not pay: store the chunk as is
      entry.flags |= CHUNK_FLAG_RAW;
    }
    entry.remoteOffset = this.#remoteEnd;
    entry.remoteSize = bytes.length;
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.#fd, bytes, done, bytes.length - done, this.#remoteEnd + done);
    this.#hash.update(bytes);
    this.#remoteEnd += bytes.length;
    this.onWritten(plain);
    this.onAppend(this.#remoteEnd, bytes === plain ? null : bytes);
  }

  /** Writes what is still queued and closes the file; returns the table and the remote form's sha256. */
  async finish(): Promise<{ table: ChunkTable; remoteDigest: string }> {
    try {
      while (this.#queue.length) await this.#writeOne();
    } finally {
      fs.closeSync(this.#fd);
    }
    return {
      table: {
        compression: this.#opts.compression, blkSzBits: this.#opts.blkSzBits, kernelSize: this.#plainEnd,
        remoteSize: this.#remoteEnd, entries: this.#entries,
      },
      remoteDigest: `sha256:${this.#hash.digest("hex")}`,
    };
  }

  /** Closes the file after a failure (queued compressions are left to settle unobserved). */
  abort(): void {
    for (const p of this.#queue) p.compressed.catch(() => {});
    try { fs.closeSync(this.#fd); } catch { /* closed by finish() */ }
  }
}
