// Per-chunk compression of the remote form. Compression runs on libuv's thread pool (zlib's async zstd,
// koffi's async liblz4), so a build compresses on every core while the main thread reads and hashes.
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import { lz4CompressAsync, lz4DecompressInto } from "../sys/lz4.ts";
import { zstdDecompressInto, zstdDecompressIntoAsync } from "../sys/zstd.ts";
import type { Compression } from "./chunk-table.ts";

export const ZSTD_DEFAULT_LEVEL = 3;
/** The bootstrap is compressed once per build and fetched by every cold start: worth a high level. */
const BOOTSTRAP_ZSTD_LEVEL = 12;

/** The bootstrap's wire form: one zstd frame (deterministic for the same bytes). */
export function compressBootstrap(meta: Uint8Array): Buffer {
  return zlib.zstdCompressSync(meta, {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: BOOTSTRAP_ZSTD_LEVEL, [zlib.constants.ZSTD_c_checksumFlag]: 0 },
    pledgedSrcSize: meta.length,
  });
}

/** The bootstrap from its wire form, exactly `size` bytes or a DIGEST_MISMATCH error. */
export function decompressBootstrap(wire: Uint8Array, size: number, what: string): Buffer {
  const out = Buffer.allocUnsafe(size);
  decompressChunkInto("zstd", wire, out, what);
  return out;
}

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
  const out = kind === "none" && remote.length === plainSize ? remote : Buffer.allocUnsafe(plainSize);
  decompressChunkInto(kind, remote, out, what);
  return out;
}

/** Decompresses one chunk into `dst`, whose length is the chunk's plain size (the fill path's pooled memory). */
export function decompressChunkInto(kind: Compression, remote: Uint8Array, dst: Uint8Array, what: string): void {
  try {
    if (kind === "none") {
      if (remote.length !== dst.length) throw new RangeError(`got ${remote.length} bytes, expected ${dst.length}`);
      if (remote !== dst) dst.set(remote);
    } else if (kind === "lz4") lz4DecompressInto(remote, dst);
    else zstdDecompressInto(remote, dst);
  } catch (err) {
    throw asCorrupt(err, what);
  }
}

/** decompressChunkInto() with zstd on the thread pool (for large chunks: the event loop stays free). */
export async function decompressChunkIntoAsync(kind: Compression, remote: Uint8Array, dst: Uint8Array, what: string): Promise<void> {
  if (kind !== "zstd") return decompressChunkInto(kind, remote, dst, what);
  try {
    await zstdDecompressIntoAsync(remote, dst);
  } catch (err) {
    throw asCorrupt(err, what);
  }
}

/** Bad input is corrupt data (retried, then EIO); anything else (a missing library) is not the remote's fault. */
function asCorrupt(err: unknown, what: string): unknown {
  if (!(err instanceof EodError || err instanceof RangeError)) return err;
  return new EodError("DIGEST_MISMATCH", `Cannot decompress ${what}: ${err.message}`, { cause: err });
}
