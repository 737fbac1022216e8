// gzip decompression with the zlib node itself is built with (Chromium's, with SIMD inflate; node exports
// its symbols for addons, and a node linked to the system's libz finds that one the same way). node:zlib's
// Gunzip allocates a new buffer for every piece of output, and for a layer of hundreds of MB those
// allocations drive the main thread's garbage collector (a full collection every ~20 MB); here the output
// goes into memory the caller owns and reuses. inflate() runs on the libuv thread pool, as node:zlib's does.
import koffi from "koffi";
import type { AsyncCallback, WithAsync } from "./libc.ts";

interface Zlib {
  version: string;
  inflateInit2: (strm: Uint8Array, windowBits: number, version: string, size: number) => number;
  inflate: WithAsync<(strm: Uint8Array, flush: number) => number>;
  inflateReset: (strm: Uint8Array) => number;
  inflateEnd: (strm: Uint8Array) => number;
  zError: (code: number) => string;
}

let cached: Zlib | undefined;

function zlib(): Zlib {
  if (cached) return cached;
  // The process's own symbols, not libz.so.1: loaded beside node's copy, libz's calls to its exported functions
  // (inflateReset2 from inflateInit2_, ...) would bind to node's, whose inflate state differs: a crash.
  const lib = koffi.load(null);
  const zlibVersion = lib.func("const char *zlibVersion(void)");
  cached = {
    version: zlibVersion() as string,
    // The z_stream is our own buffer (void *: koffi passes its memory as is, so zlib's state may point back at it).
    inflateInit2: lib.func("int inflateInit2_(void *strm, int windowBits, const char *version, int stream_size)"),
    inflate: lib.func("int inflate(void *strm, int flush)"),
    inflateReset: lib.func("int inflateReset(void *strm)"),
    inflateEnd: lib.func("int inflateEnd(void *strm)"),
    zError: lib.func("const char *zError(int err)"),
  };
  return cached;
}

// struct z_stream on LP64 (zlib.h): the fields we set and read, and its size.
const NEXT_IN = 0, AVAIL_IN = 8, NEXT_OUT = 24, AVAIL_OUT = 32, Z_STREAM_SIZE = 112;
const Z_OK = 0, Z_STREAM_END = 1, Z_BUF_ERROR = -5;
/** 15-bit window, gzip wrapper only (what node:zlib's Gunzip asks for). */
const GZIP_WINDOW_BITS = 15 + 16;

export interface InflateStep {
  /** Input bytes consumed, output bytes made. */
  used: number;
  made: number;
  /** The gzip member ended (its CRC and length were checked). */
  end: boolean;
}

/** A gzip inflater writing into caller memory; not thread-safe, one call at a time. */
export class GzipInflater {
  // Memory of its own that never moves (a small typed array may live in the JS heap); zalloc, zfree and opaque
  // are Z_NULL: zlib's own allocator.
  readonly #strm = Buffer.allocUnsafeSlow(Z_STREAM_SIZE).fill(0);
  #open = false;

  constructor() {
    const rc = zlib().inflateInit2(this.#strm, GZIP_WINDOW_BITS, zlib().version, Z_STREAM_SIZE);
    if (rc !== Z_OK) throw new Error(`inflateInit2 failed: ${zlib().zError(rc)}`);
    this.#open = true;
  }

  /**
   * Inflates from `input` into `output` on the thread pool; neither may be touched until it settles.
   * Rejects with an Error whose `code` is "Z_DATA_ERROR" and the like when the stream is corrupt.
   */
  inflate(input: Uint8Array, output: Uint8Array): Promise<InflateStep> {
    if (!this.#open) return Promise.reject(new Error("GzipInflater used after close()"));
    const s = this.#strm;
    s.writeBigUInt64LE(koffi.address(input), NEXT_IN);
    s.writeUInt32LE(input.byteLength, AVAIL_IN);
    s.writeBigUInt64LE(koffi.address(output), NEXT_OUT);
    s.writeUInt32LE(output.byteLength, AVAIL_OUT);
    return new Promise((resolve, reject) => {
      const done: AsyncCallback<number> = (err, rc) => {
        if (err) return reject(err);
        // Z_BUF_ERROR: no progress possible (input used up), not an error in a stream.
        if (rc !== Z_OK && rc !== Z_STREAM_END && rc !== Z_BUF_ERROR) {
          return reject(Object.assign(new Error(zlib().zError(rc)), { code: ZLIB_CODES[rc] ?? `Z_${rc}` }));
        }
        resolve({ used: input.byteLength - s.readUInt32LE(AVAIL_IN), made: output.byteLength - s.readUInt32LE(AVAIL_OUT), end: rc === Z_STREAM_END });
      };
      zlib().inflate.async(s, 0, done);
    });
  }

  /** Starts a new gzip member (a file of concatenated members, as gzip(1) makes with `cat a.gz b.gz`). */
  reset(): void {
    zlib().inflateReset(this.#strm);
  }

  /** Frees zlib's state; call only when no inflate() is running. */
  close(): void {
    if (this.#open) zlib().inflateEnd(this.#strm);
    this.#open = false;
  }
}

const ZLIB_CODES: Record<number, string> = { [-2]: "Z_STREAM_ERROR", [-3]: "Z_DATA_ERROR", [-4]: "Z_MEM_ERROR", [-6]: "Z_VERSION_ERROR", 2: "Z_NEED_DICT" };
