// Per-chunk compression of the remote form. Compression runs on libuv's thread pool (zlib's async zstd,
// koffi's async liblz4), so a build compresses on every core while the main thread reads and hashes.
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import { lz4CompressAsync, lz4Decompress } from "../sys/lz4.ts";
import type { Compression } from "./chunk-table.ts";

export const ZSTD_DEFAULT_LEVEL = 3;

export function compressChunk(kind: Compression, plain: Uint8Array, level?: number): Promise<Uint8Array> {
  switch (kind) {
    case "none":
      return Promise.resolve(plain);
    case "lz4":
      return lz4CompressAsync(plain, level);
    case "zstd":
      return new Promise((resolve, reject) => {
        zlib.zstdCompress(plain, {
          params: { [zlib.constants.ZSTD_c_compressionLevel]: level ?? ZSTD_DEFAULT_LEVEL, [zlib.constants.ZSTD_c_checksumFlag]: 0 },
          pledgedSrcSize: plain.length,
        }, (err, out) => (err ? reject(err) : resolve(out)));
      });
  }
}

/** Decompresses one chunk; anything but exactly `plainSize` bytes is an error (never wrong-length data). */
export function decompressChunk(kind: Compression, remote: Uint8Array, plainSize: number, what: string): Uint8Array {
  let out: Uint8Array;
  try {
    if (kind === "none") out = remote;
    else if (kind === "lz4") out = lz4Decompress(remote, plainSize);
    else out = zlib.zstdDecompressSync(remote, { maxOutputLength: plainSize });
  } catch (err) {
    throw new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: ${(err as Error).message}`, { cause: err });
  }
  if (out.length !== plainSize) {
    throw new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: got ${out.length} bytes, expected ${plainSize}`);
  }
  return out;
}

/** Async decompression (zstd on the thread pool) with the same exact-size rule as decompressChunk(). */
export function decompressChunkAsync(kind: Compression, remote: Uint8Array, plainSize: number, what: string): Promise<Uint8Array> {
  if (kind !== "zstd") {
    try {
      return Promise.resolve(decompressChunk(kind, remote, plainSize, what));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    zlib.zstdDecompress(remote, { maxOutputLength: plainSize }, (err, out) => {
      if (err) return reject(new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: ${err.message}`, { cause: err }));
      if (out.length !== plainSize) return reject(new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: got ${out.length} bytes, expected ${plainSize}`));
      resolve(out);
    });
  });
}
