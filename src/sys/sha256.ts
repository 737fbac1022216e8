// SHA-256 with node's own OpenSSL (the process's exported EVP functions, as for addons), updated on the libuv
// thread pool: node:crypto's Hash runs on the main thread, and a layer's diff_id over hundreds of MB of tar
// is ~0.3 s of it that can overlap with everything else instead.
import koffi from "koffi";
import type { AsyncCallback, WithAsync } from "./libc.ts";

interface Evp {
  newCtx: () => unknown;
  freeCtx: (ctx: unknown) => void;
  sha256: () => unknown;
  init: (ctx: unknown, md: unknown, engine: null) => number;
  update: WithAsync<(ctx: unknown, data: Uint8Array, length: number) => number>;
  final: (ctx: unknown, md: Uint8Array, size: null) => number;
}

let cached: Evp | undefined;

function evp(): Evp {
  if (cached) return cached;
  const lib = koffi.load(null); // node's OpenSSL, not a second libcrypto beside it
  cached = {
    newCtx: lib.func("void *EVP_MD_CTX_new(void)"),
    freeCtx: lib.func("void EVP_MD_CTX_free(void *ctx)"),
    sha256: lib.func("const void *EVP_sha256(void)"),
    init: lib.func("int EVP_DigestInit_ex(void *ctx, const void *type, void *engine)"),
    update: lib.func("int EVP_DigestUpdate(void *ctx, const void *d, size_t cnt)"),
    final: lib.func("int EVP_DigestFinal_ex(void *ctx, void *md, unsigned int *s)"),
  };
  return cached;
}

/** A running SHA-256; update() calls must not overlap (each waits for the previous one). */
export class PooledSha256 {
  #ctx: unknown;

  constructor() {
    this.#ctx = evp().newCtx();
    if (!this.#ctx || evp().init(this.#ctx, evp().sha256(), null) !== 1) throw new Error("EVP_DigestInit_ex(sha256) failed");
  }

  /** Hashes `data` on the thread pool; it must not change until this settles. */
  update(data: Uint8Array): Promise<void> {
    if (!this.#ctx) return Promise.reject(new Error("PooledSha256 used after digest()"));
    // A small typed array may live in the JS heap, which the GC moves while the thread pool reads: copied
    // (into Node's buffer pool, which is off the heap).
    if (data.byteLength < 4096) data = Buffer.from(data);
    return new Promise((resolve, reject) => {
      const done: AsyncCallback<number> = (err, ok) => (err ? reject(err) : ok === 1 ? resolve() : reject(new Error("EVP_DigestUpdate failed")));
      evp().update.async(this.#ctx, data, data.byteLength, done);
    });
  }

  /** The digest as lowercase hex; frees the context (no update() may be running). */
  digestHex(): string {
    if (!this.#ctx) throw new Error("PooledSha256 used after digest()");
    const md = Buffer.allocUnsafeSlow(32); // its own memory (a small typed array may live in the JS heap)
    const ok = evp().final(this.#ctx, md, null);
    this.close();
    if (ok !== 1) throw new Error("EVP_DigestFinal_ex failed");
    return md.toString("hex");
  }

  close(): void {
    if (this.#ctx) evp().freeCtx(this.#ctx);
    this.#ctx = null;
  }
}
