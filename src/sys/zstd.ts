// zstd frames through Debian's libzstd.so.1 (package libzstd1, a dependency of dpkg/apt/systemd, so always
// present on Debian). Node's zlib has zstd too, but only into buffers it allocates, in 16 KiB output steps;
// the cache fill path decompresses into pooled memory of the exact size instead (no garbage, one call).
import koffi from "koffi";
import { EodError } from "../errors.ts";
import type { AsyncCallback, WithAsync } from "./libc.ts";

type DecompressFn = (dst: Uint8Array, dstCapacity: number, src: Uint8Array, srcSize: number) => number | bigint;

interface Zstd {
  decompress: WithAsync<DecompressFn>;
  isError: (code: number | bigint) => number;
  getErrorName: (code: number | bigint) => string;
}

// Loaded on first use so that importing src/sys works where libzstd is absent.
let cached: Zstd | undefined;

function zstd(): Zstd {
  if (cached) return cached;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load("libzstd.so.1");
  } catch (err) {
    throw new Error("Cannot load libzstd.so.1: install the Debian package libzstd1", { cause: err });
  }
  cached = {
    decompress: lib.func("size_t ZSTD_decompress(void *dst, size_t dstCapacity, const void *src, size_t compressedSize)"),
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
