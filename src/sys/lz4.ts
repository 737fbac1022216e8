// Raw LZ4 blocks (no frame header), as EROFS stores them, through Debian's liblz4.so.1
// (package liblz4-1, a dependency of dpkg/apt/systemd, so always present on Debian).
// Node has no LZ4; a native library also lets compression run on libuv threads in parallel.
import koffi from "koffi";
import { EodError } from "../errors.ts";
import type { AsyncCallback, WithAsync } from "./libc.ts";

type CompressFn = (src: Uint8Array, dst: Uint8Array, srcSize: number, dstCapacity: number) => number;
type CompressHcFn = (src: Uint8Array, dst: Uint8Array, srcSize: number, dstCapacity: number, level: number) => number;

interface Lz4 {
  compressBound: (inputSize: number) => number;
  compressDefault: WithAsync<CompressFn>;
  compressHc: WithAsync<CompressHcFn>;
  decompressSafe: (src: Uint8Array, dst: Uint8Array, compressedSize: number, dstCapacity: number) => number;
}

/** LZ4_MAX_INPUT_SIZE (lz4.h): the block API takes int sizes and refuses more than this. */
export const LZ4_MAX_INPUT_SIZE = 0x7e000000;
/** LZ4HC_CLEVEL_MAX (lz4hc.h); higher levels are clamped to it by liblz4. */
export const LZ4HC_CLEVEL_MAX = 12;

// Loaded on first use so that importing src/sys works where liblz4 is absent.
let cached: Lz4 | undefined;

function lz4(): Lz4 {
  if (cached) return cached;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load("liblz4.so.1");
  } catch (err) {
    throw new Error("Cannot load liblz4.so.1: install the Debian package liblz4-1", { cause: err });
  }
  // Buffers are passed as `void *`: koffi hands over their address (byteOffset included), no copy.
  cached = {
    compressBound: lib.func("int LZ4_compressBound(int inputSize)"),
    compressDefault: lib.func("int LZ4_compress_default(const void *src, void *dst, int srcSize, int dstCapacity)"),
    compressHc: lib.func(
      "int LZ4_compress_HC(const void *src, void *dst, int srcSize, int dstCapacity, int compressionLevel)",
    ),
    decompressSafe: lib.func(
      "int LZ4_decompress_safe(const void *src, void *dst, int compressedSize, int dstCapacity)",
    ),
  };
  return cached;
}

/** Worst-case compressed size of `n` input bytes (LZ4_compressBound). */
export function lz4CompressBound(n: number): number {
  checkSize(n, "input size");
  return lz4().compressBound(n);
}

/**
 * Compresses `src` into one raw LZ4 block. `level` undefined or 0 uses LZ4_compress_default
 * (fast); 1..12 uses LZ4_compress_HC at that level (slower, smaller).
 * @example
 * const block = lz4Compress(data, 9);
 * lz4Decompress(block, data.length); // equals data
 */
export function lz4Compress(src: Uint8Array, level?: number): Buffer {
  const { dst, hc } = prepare(src, level);
  const n = hc
    ? lz4().compressHc(src, dst, src.byteLength, dst.byteLength, hc)
    : lz4().compressDefault(src, dst, src.byteLength, dst.byteLength);
  return finish(n, dst, src.byteLength);
}

/**
 * lz4Compress() on a libuv worker thread, so several blocks compress in parallel.
 * `src` must not be modified until the promise settles (the worker reads it in place).
 * koffi allows 256 async calls in flight in total: callers should keep this ≤ 64.
 */
export function lz4CompressAsync(src: Uint8Array, level?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const { dst, hc } = prepare(src, level);
    // The closure keeps src and dst alive (and so their memory pinned) until the callback.
    const done: AsyncCallback<number> = (err, n) => {
      if (err) return reject(err);
      try {
        resolve(finish(n, dst, src.byteLength));
      } catch (e) {
        reject(e);
      }
    };
    if (hc) lz4().compressHc.async(src, dst, src.byteLength, dst.byteLength, hc, done);
    else lz4().compressDefault.async(src, dst, src.byteLength, dst.byteLength, done);
  });
}

/**
 * Decompresses one raw LZ4 block that must expand to exactly `plainSize` bytes
 * (LZ4_decompress_safe: never reads or writes out of bounds, whatever the input).
 * @throws EodError IMAGE_INVALID if the block is malformed or has another size
 */
export function lz4Decompress(src: Uint8Array, plainSize: number): Buffer {
  checkSize(plainSize, "plain size");
  const dst = Buffer.allocUnsafe(plainSize); // fully written on success; never returned otherwise
  lz4DecompressInto(src, dst);
  return dst;
}

/** lz4Decompress() into `dst`, whose length is the exact plain size. */
export function lz4DecompressInto(src: Uint8Array, dst: Uint8Array): void {
  checkSize(dst.byteLength, "plain size");
  checkSize(src.byteLength, "compressed size");
  const n = lz4().decompressSafe(src, dst, src.byteLength, dst.byteLength);
  if (n < 0) {
    throw new EodError(
      "IMAGE_INVALID",
      `Cannot decompress LZ4 block of ${src.byteLength} bytes: malformed at input byte ${-n - 1}`,
    );
  }
  if (n !== dst.byteLength) {
    throw new EodError(
      "IMAGE_INVALID",
      `Cannot decompress LZ4 block of ${src.byteLength} bytes: expands to ${n} bytes, expected ${dst.byteLength}`,
    );
  }
}

function prepare(src: Uint8Array, level: number | undefined): { dst: Buffer; hc: number } {
  const hc = level ?? 0;
  if (!Number.isInteger(hc) || hc < 0) {
    throw new RangeError(`Cannot compress with LZ4 level ${level}: must be 0 (fast) or 1..${LZ4HC_CLEVEL_MAX} (HC)`);
  }
  return { dst: Buffer.allocUnsafe(lz4CompressBound(src.byteLength)), hc };
}

function finish(n: number, dst: Buffer, srcSize: number): Buffer {
  // 0 means "does not fit", impossible with a compressBound-sized output: a liblz4 bug.
  if (n <= 0) throw new Error(`LZ4 compression of ${srcSize} bytes failed (returned ${n})`);
  // Copy a much smaller result, so that the caller does not keep the whole bound-sized buffer alive.
  return n * 2 < dst.byteLength ? Buffer.from(dst.subarray(0, n)) : dst.subarray(0, n);
}

function checkSize(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > LZ4_MAX_INPUT_SIZE) {
    throw new RangeError(`Cannot use LZ4 ${what} ${n}: must be an integer in 0..${LZ4_MAX_INPUT_SIZE}`);
  }
}
