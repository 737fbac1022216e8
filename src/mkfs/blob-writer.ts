// Appends chunks to one blob: assigns each its block-aligned place in the kernel form at once, compresses it
// on the thread pool, and writes the remote form strictly in order. At most `maxInFlight` chunks are held in
// memory, whatever the size of the tree. The remote form is copied into 1 MiB batches, each hashed here and
// written on the thread pool (a chunk is often a few KB: one write and one hash update each cost the main
// thread more than the copy).
import fs from "node:fs";
import { CHUNK_FLAG_RAW, type ChunkEntry, type ChunkTable, type Compression } from "../image/chunk-table.ts";
import { compressChunk } from "../image/codec.ts";
import { sha256Stream } from "../util/sha256.ts";

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
  readonly #hash = sha256Stream();
  #plainEnd = 0;
  #remoteEnd = 0;
  /** The batch being filled, batches on their way (written in order), spare batch buffers. */
  #batch: Batch | null = null;
  #batches = 0;
  #settled: Promise<void> = Promise.resolve();
  readonly #spare: Buffer[] = [];
  #failure: { err: unknown } | null = null;
  #closed = false;
  /** Called with each chunk's plain bytes once written, so their buffer can be reused. */
  onWritten: (plain: Uint8Array) => void = () => {};
  /**
   * Called for each appended chunk, in order, once it is in the file: with the remote form's new length, and
   * the chunk's bytes when they are its own (compressed) memory, which nothing else reuses; null when they
   * were the plain buffer (given back to the pool already).
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
    this.#remoteEnd += bytes.length;
    await this.#stage(bytes);
    // Told once its batch is in the file; the chunk's own (compressed) memory, which nothing else reuses,
    // or null when the bytes were the plain buffer, given back right now (the batch has a copy).
    this.#batch!.appends.push({ end: this.#remoteEnd, bytes: bytes === plain ? null : bytes });
    this.onWritten(plain);
  }

  /** Copies `bytes` into batches, sending each full one off. */
  async #stage(bytes: Uint8Array): Promise<void> {
    let at = 0;
    for (;;) {
      const b = (this.#batch ??= { buf: this.#spare.pop() ?? Buffer.allocUnsafeSlow(BATCH), fill: 0, at: this.#remoteEnd - bytes.length + at, appends: [] });
      const n = Math.min(bytes.length - at, b.buf.length - b.fill);
      b.buf.set(bytes.subarray(at, at + n), b.fill);
      b.fill += n;
      at += n;
      if (at === bytes.length) return;
      await this.#send(); // full, and more to copy
    }
  }

  /** Hashes the current batch and writes it on the thread pool; its appends are told in order once written. */
  async #send(): Promise<void> {
    const b = this.#batch;
    this.#batch = null;
    if (!b || !b.fill) return;
    if (this.#failure) throw this.#failure.err;
    const data = b.buf.subarray(0, b.fill);
    this.#hash.update(data);
    const written = writeAll(this.#fd, data, b.at);
    this.#batches++;
    this.#settled = Promise.all([this.#settled, written]).then(() => {
      this.#batches--;
      if (this.#spare.length < MAX_BATCHES) this.#spare.push(b.buf);
      for (const a of b.appends) this.onAppend(a.end, a.bytes);
    });
    this.#settled.catch((err) => { this.#failure ??= { err }; });
    if (this.#batches >= MAX_BATCHES) await this.#settled;
  }

  /** Writes what is still queued and closes the file; returns the table and the remote form's sha256. */
  async finish(): Promise<{ table: ChunkTable; remoteDigest: string }> {
    let digest: string;
    try {
      while (this.#queue.length) await this.#writeOne();
      await this.#send();
      await this.#settled;
      digest = this.#hash.digest("hex");
    } finally {
      await this.#close();
    }
    return {
      table: {
        compression: this.#opts.compression, blkSzBits: this.#opts.blkSzBits, kernelSize: this.#plainEnd,
        remoteSize: this.#remoteEnd, entries: this.#entries,
      },
      remoteDigest: `sha256:${digest}`,
    };
  }

  /** Closes the file after a failure (queued compressions are left to settle unobserved). */
  abort(): void {
    for (const p of this.#queue) p.compressed.catch(() => {});
    this.#close().catch(() => {}); // the failure that made us abort is the one the caller reports
  }

  /** Closes the file once no batch is being written (its descriptor number could be reused meanwhile). */
  async #close(): Promise<void> {
    await this.#settled.catch(() => {});
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}

/** Bytes per write and hash update of the remote form, and batches on their way at most. */
const BATCH = 1 << 20;
const MAX_BATCHES = 4;

interface Batch {
  buf: Buffer;
  fill: number;
  /** Offset of buf[0] in the remote form. */
  at: number;
  appends: Array<{ end: number; bytes: Uint8Array | null }>;
}

/** pwrite() of all of `data` at `pos`, on the thread pool. */
export async function writeAll(fd: number, data: Uint8Array, pos: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    done += await new Promise<number>((resolve, reject) => {
      fs.write(fd, data, done, data.length - done, pos + done, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }
}
