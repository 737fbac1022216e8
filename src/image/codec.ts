// The one entry to the remote form's codecs: zstd through node:zlib (frames with the content size and no
// checksum), raw LZ4 blocks (lz4.ts: no frame or size header, as docs/format.md says), and `none`. zstd's
// async forms run on libuv's thread pool, so a build compresses and a fill decodes on every core while the
// main thread reads and hashes; LZ4 runs on the calling thread (a build's chunk workers compress it).
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import type { ChunkTable, Compression } from "./chunk-table.ts";
import { decodeGzipPieces, decodeGzipPiecesAsync, decodeGzipSpan, decodeGzipSpanAsync } from "./gzip-span.ts";
import { decodeZstdSpan, decodeZstdSpanAsync } from "./zstd-span.ts";
import { LZ4_MAX_LEVEL, lz4Bound, lz4CompressBlock, lz4DecompressBlock } from "./lz4.ts";

const ZSTD_DEFAULT_LEVEL = 3;
/** The bootstrap is compressed once per build and fetched by every cold start: worth a high level. */
const BOOTSTRAP_ZSTD_LEVEL = 12;

/** The bootstrap's wire form: one zstd frame (deterministic for the same bytes). */
export function compressBootstrap(meta: Uint8Array): Buffer {
  return zlib.zstdCompressSync(meta, zstdParams(BOOTSTRAP_ZSTD_LEVEL, meta.length));
}

/** The bootstrap from its wire form, exactly `size` bytes or a DIGEST_MISMATCH error. */
export function decompressBootstrap(wire: Uint8Array, size: number, what: string): Buffer {
  const plain = decompressChunk("zstd", wire, size, what);
  return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength); // a view: Buffer.from(plain) would copy it
}

/** One chunk's remote form (`level`: zstd's, or lz4's 1..12 (HC) for smaller blocks; more is 12, as liblz4 does). */
export async function compressChunk(kind: Compression, plain: Uint8Array, level?: number): Promise<Uint8Array> {
  switch (kind) {
    case "none":
    case "lz4":
      return compressChunkSync(kind, plain, level);
    case "zstd":
      return new Promise((resolve, reject) => {
        zlib.zstdCompress(plain, zstdParams(level ?? ZSTD_DEFAULT_LEVEL, plain.length), (err, out) => (err ? reject(err) : resolve(out)));
      });
  }
}

/**
 * compressChunk() on the calling thread (a chunk worker's). With `scratch` (a caller that copies the result
 * out), an LZ4 block is made in it when it has room, instead of in a new buffer.
 */
export function compressChunkSync(kind: Compression, plain: Uint8Array, level?: number, scratch?: Uint8Array): Uint8Array {
  switch (kind) {
    case "none":
      return plain;
    case "lz4":
      if (scratch && scratch.length >= lz4Bound(plain.length)) return lz4CompressBlock(plain, Math.min(level ?? 0, LZ4_MAX_LEVEL), scratch);
      return lz4Block(plain, level);
    case "zstd":
      return zlib.zstdCompressSync(plain, zstdParams(level ?? ZSTD_DEFAULT_LEVEL, plain.length));
  }
}

/** Decompresses one chunk; anything but exactly `plainSize` bytes is a DIGEST_MISMATCH (never wrong-length data). */
export function decompressChunk(kind: Compression, remote: Uint8Array, plainSize: number, what: string): Uint8Array {
  let plain: Uint8Array;
  try {
    if (kind === "none") plain = remote;
    else if (kind === "lz4") plain = lz4Decode(remote, plainSize);
    else plain = zlib.zstdDecompressSync(remote, zstdOutput(plainSize));
  } catch (err) {
    throw corrupt(err, what);
  }
  return exactly(plain, plainSize, what);
}

/** decompressChunk() on the thread pool (for large chunks: the event loop stays free). */
export async function decompressChunkAsync(kind: Compression, remote: Uint8Array, plainSize: number, what: string): Promise<Uint8Array> {
  if (kind !== "zstd") return decompressChunk(kind, remote, plainSize, what);
  let plain: Uint8Array;
  try {
    plain = await new Promise<Buffer>((resolve, reject) => zlib.zstdDecompress(remote, zstdOutput(plainSize), (err, out) => (err ? reject(err) : resolve(out))));
  } catch (err) {
    throw corrupt(err, what);
  }
  return exactly(plain, plainSize, what);
}

/**
 * Span `i` of a layer's seek index (chunk table version 2) from its remote bytes: gzip-span.ts,
 * zstd-span.ts, or none (the bytes as they are): exactly the span's plain bytes, else a DIGEST_MISMATCH.
 */
export function decompressSpan(table: ChunkTable, i: number, remote: Uint8Array, what: string): Uint8Array {
  if (table.compression === "gzip") return decodeGzipSpan(table, i, remote, what);
  if (table.compression === "zstd") return decodeZstdSpan(table, i, remote, what);
  return exactly(remote, table.entries[i].plainSize, what);
}

/** decompressSpan() with the decoding on the thread pool. */
export async function decompressSpanAsync(table: ChunkTable, i: number, remote: Uint8Array, what: string): Promise<Uint8Array> {
  if (table.compression === "gzip") return decodeGzipSpanAsync(table, i, remote, what);
  if (table.compression === "zstd") return decodeZstdSpanAsync(table, i, remote, what);
  return decompressSpan(table, i, remote, what);
}

/**
 * Spans first..last from the remote bytes of `last`, in one decoding pass: pieces of one gzip checkpoint
 * (chunk-table.ts sameCheckpoint, gzip-span.ts), else one span (first = last). Not yet verified.
 */
export function decompressSpans(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: string): Uint8Array[] {
  if (table.compression === "gzip") return decodeGzipPieces(table, first, last, remote, what);
  return [decompressSpan(table, oneSpan(first, last), remote, what)];
}

/** decompressSpans() with the decoding on the thread pool. */
export async function decompressSpansAsync(table: ChunkTable, first: number, last: number, remote: Uint8Array, what: string): Promise<Uint8Array[]> {
  if (table.compression === "gzip") return decodeGzipPiecesAsync(table, first, last, remote, what);
  return [await decompressSpanAsync(table, oneSpan(first, last), remote, what)];
}

/** Only a gzip checkpoint has several pieces (zstd's spans are frames, none's are bytes as they are). */
function oneSpan(first: number, last: number): number {
  if (first !== last) throw new RangeError(`internal: spans ${first}..${last} of a layer that is not gzip decoded together`);
  return first;
}

/** One frame with the content size and no checksum, made in one output step (zlib's default is 16 KiB steps, joined). */
function zstdParams(level: number, size: number): zlib.ZstdOptions {
  return {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level, [zlib.constants.ZSTD_c_checksumFlag]: 0 },
    pledgedSrcSize: size,
    chunkSize: Math.max(64, size + (size >> 7) + 512), // more than ZSTD_compressBound(size)
  };
}

/**
 * All of the output in one buffer (a little larger than the plain size, so a frame that ends there needs no
 * second, empty one), and no more than one byte past it: a frame that expands further is cut short, not
 * decoded to the end.
 */
function zstdOutput(plainSize: number): zlib.ZstdOptions {
  return { chunkSize: Math.max(64, plainSize + 64), maxOutputLength: plainSize + 1 };
}

function lz4Block(plain: Uint8Array, level: number | undefined): Uint8Array {
  const block = lz4CompressBlock(plain, Math.min(level ?? 0, LZ4_MAX_LEVEL));
  // Copied when much smaller, so that the caller does not keep the whole bound-sized buffer alive.
  return block.length * 2 < block.buffer.byteLength ? block.slice() : block;
}

function lz4Decode(block: Uint8Array, plainSize: number): Uint8Array {
  const out = Buffer.allocUnsafe(plainSize);
  return out.subarray(0, lz4DecompressBlock(block, out));
}

function exactly(plain: Uint8Array, plainSize: number, what: string): Uint8Array {
  if (plain.length !== plainSize) throw new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: got ${plain.length} bytes, expected ${plainSize}`);
  return plain;
}

/** Undecodable bytes are corrupt data (retried, then EIO), whatever the codec's error. */
function corrupt(err: unknown, what: string): EodError {
  const why = err instanceof Error ? err.message : String(err);
  return new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: ${why}`, { cause: err });
}
