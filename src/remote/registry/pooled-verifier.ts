// A streamed blob's digest check with the hashing on the libuv thread pool (PooledSha256) instead of the main
// thread: a 120 MB layer is ~0.1 s of main-thread SHA-256 that can overlap with the download and the build.
// sha512 digests (rare) are hashed on the main thread as before. Same checks and errors as DigestVerifier.
import { EodError } from "../../errors.ts";
import { PooledSha256 } from "../../sys/sha256.ts";
import { DigestVerifier } from "./digest.ts";

/** Bytes handed to the pool but not hashed yet, at most, before waitBehind() makes the reader wait. */
const BEHIND_MAX = 8 << 20;

export class PooledVerifier {
  readonly digest: string;
  #main: DigestVerifier | null = null;
  #pool: PooledSha256 | null = null;
  #chain: Promise<void> = Promise.resolve();
  #failed: { err: unknown } | null = null;
  #bytes = 0;
  #hashed = 0;

  constructor(digest: string) {
    const v = new DigestVerifier(digest); // checks the digest's form
    this.digest = v.digest;
    if (digest.startsWith("sha256:")) this.#pool = new PooledSha256();
    else this.#main = v;
  }

  /** Bytes given to update() so far (hashed or queued). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Queues `chunk`; it must not change until verify() or close() settles (undici's body pieces never do). */
  update(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    if (this.#main) return this.#main.update(chunk);
    const pool = this.#pool!;
    this.#chain = this.#chain.then(() => pool.update(chunk)).then(
      () => { this.#hashed += chunk.length; },
      (err) => { this.#failed ??= { err }; },
    );
  }

  /** Waits while the pool is more than BEHIND_MAX bytes behind (bounds the memory held for it). */
  async waitBehind(): Promise<void> {
    if (this.#bytes - this.#hashed > BEHIND_MAX && !this.#failed) await this.#chain;
  }

  /** DIGEST_MISMATCH unless the bytes seen hash to the digest (and number `size`, when given). Frees the hash. */
  async verify(what: string, size?: number): Promise<void> {
    if (this.#main) return this.#main.verify(what, size);
    await this.#chain;
    if (this.#failed) throw this.#failed.err;
    if (size !== undefined && this.#bytes !== size) {
      throw new EodError("DIGEST_MISMATCH", `${what}: ${this.#bytes} bytes, the descriptor says ${size}`);
    }
    const got = `sha256:${this.#pool!.digestHex()}`;
    if (got !== this.digest) throw new EodError("DIGEST_MISMATCH", `${what}: content has digest ${got}, expected ${this.digest}`);
  }

  /** Frees the hash once no update runs (after a failure or an early stop; a no-op after verify()). */
  async close(): Promise<void> {
    await this.#chain;
    this.#pool?.close();
  }
}
