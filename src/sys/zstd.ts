// zstd frames through the zstd library node is built with, called directly (koffi). node:zlib has zstd too,
// but only into buffers it allocates, in 16 KiB output steps;
// the cache fill path decompresses into pooled memory of the exact size instead (no garbage, one call), and
// the build's chunk workers compress with one reused context each (node:zlib makes a stream per chunk).
import koffi from "koffi";
import { EodError } from "../errors.ts";
import type { AsyncCallback, WithAsync } from "./libc.ts";

type DecompressFn = (dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number) => number | bigint;

interface Zstd {
  decompress: WithAsync<DecompressFn>;
  createCCtx: () => unknown;
  freeCCtx: (cctx: unknown) => number | bigint;
  compressCCtx: (cctx: unknown, dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number, level: number) => number | bigint;
  compressBound: (srcSize: number) => number | bigint;
  isError: (code: number | bigint) => number;
  getErrorName: (code: number | bigint) => string;
}

// Loaded on first use.
let cached: Zstd | undefined;

function zstd(): Zstd {
  if (cached) return cached;
  // Node's own zstd (exported for addons; node 24 bundles 1.5.7), the one node:zlib uses, so frames match
  // its zstdCompressSync. Debian's libzstd.so.1 (1.5.4) loaded beside it ran node's code anyway: its entry
  // points call exported functions, which bind to node's copy first — two versions' code on one context.
  const lib = koffi.load(null);
  cached = {
    decompress: lib.func("size_t ZSTD_decompress(void *dst, size_t dstCapacity, const void *src, size_t compressedSize)"),
    createCCtx: lib.func("void *ZSTD_createCCtx(void)"),
    freeCCtx: lib.func("size_t ZSTD_freeCCtx(void *cctx)"),
    compressCCtx: lib.func("size_t ZSTD_compressCCtx(void *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level)"),
    compressBound: lib.func("size_t ZSTD_compressBound(size_t srcSize)"),
    isError: lib.func("unsigned int ZSTD_isError(size_t code)"),
    getErrorName: lib.func("const char *ZSTD_getErrorName(size_t code)"),
  };
  return cached;
}

/**
 * Decompresses zstd frames that must expand to exactly `dst.byteLength` bytes, into `dst`
 * (ZSTD_decompress never writes past dstCapacity, whatever the input).
 * @throws EodError IMAGE_INVALID if the input is malformed or expands to another size
 */
export function zstdDecompressInto(src: Uint8Array, dst: Uint8Array): void {
  check(zstd().decompress(dst, dst.byteLength, src, src.byteLength), src, dst);
}

/** ZSTD_compressBound(): the most one frame of `srcSize` bytes can take. */
export function zstdCompressBound(srcSize: number): number {
  return Number(zstd().compressBound(srcSize));
}

/**
 * A zstd compressor with one context, reused for every call (a context is not thread-safe: one per thread).
 * Each call makes one frame with the content size and no checksum, like zlib.zstdCompressSync() with
 * pledgedSrcSize and ZSTD_c_checksumFlag 0; `dst` needs zstdCompressBound(src.byteLength) bytes.
 */
export class ZstdCompressor {
  #cctx: unknown;

  constructor() {
    this.#cctx = zstd().createCCtx();
    if (!this.#cctx) throw new Error("ZSTD_createCCtx failed (out of memory)");
  }

  /** Compresses `src` into `dst` at `level`; returns the frame's length. */
  compress(src: Uint8Array, dst: Uint8Array, level: number): number {
    if (!this.#cctx) throw new Error("ZstdCompressor used after close()");
    const n = zstd().compressCCtx(this.#cctx, dst, dst.byteLength, src, src.byteLength, level);
    if (zstd().isError(n)) throw new Error(`Cannot compress ${src.byteLength} bytes with zstd: ${zstd().getErrorName(n)}`);
    return Number(n);
  }

  close(): void {
    if (this.#cctx) zstd().freeCCtx(this.#cctx);
    this.#cctx = null;
  }
}

// koffi refuses more than 256 asynchronous calls in flight (all of them, lz4 included), and libuv runs only a
// few at a time anyway: decodes beyond this many wait here instead of failing.
const MAX_ASYNC = 32;
let running = 0;
const waiting: Array<() => void> = [];

/** zstdDecompressInto() on a libuv worker thread; `src` and `dst` must not be touched until it settles. */
export async function zstdDecompressIntoAsync(src: Uint8Array, dst: Uint8Array): Promise<void> {
  if (running >= MAX_ASYNC) await new Promise<void>((go) => waiting.push(go)); // a finishing call hands us its slot
  else running++;
  try {
    await decompressOnPool(src, dst);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

function decompressOnPool(src: Uint8Array, dst: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const done: AsyncCallback<number | bigint> = (err, n) => {
      if (err) return reject(err);
      try {
        check(n, src, dst);
        resolve();
      } catch (e) {
        reject(e);
      }
    };
    zstd().decompress.async(dst, dst.byteLength, src, src.byteLength, done);
  });
}

function check(n: number | bigint, src: Uint8Array, dst: Uint8Array): void {
  if (zstd().isError(n)) {
    throw new EodError("IMAGE_INVALID", `Cannot decompress zstd data of ${src.byteLength} bytes: ${zstd().getErrorName(n)}`);
  }
  if (Number(n) !== dst.byteLength) {
    throw new EodError("IMAGE_INVALID", `Cannot decompress zstd data of ${src.byteLength} bytes: expands to ${n} bytes, expected ${dst.byteLength}`);
  }
}
