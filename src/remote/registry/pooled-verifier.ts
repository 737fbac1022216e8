// A streamed blob's digest check with the hashing on the libuv thread pool (PooledSha256) instead of the main
// thread: a 120 MB layer is ~0.1 s of main-thread SHA-256 that can overlap with the download and the build.
// The pieces (undici's, ~64 KiB) are copied into 1 MiB batches first: one pool call per piece costs the main
// thread about as much as hashing it. sha512 digests (rare) are hashed on the main thread as before. Same
// checks and errors as DigestVerifier.
import { EodError } from "../../errors.ts";
import { PooledSha256 } from "../../sys/sha256.ts";
import { DigestVerifier } from "./digest.ts";

const BATCH = 1 << 20;
/** Batches handed to the pool but not hashed yet, at most, before waitBehind() makes the reader wait. */
const BEHIND_MAX = 8;

export class PooledVerifier {
  readonly digest: string;
  #main: DigestVerifier | null = null;
  #pool: PooledSha256 | null = null;
  #chain: Promise<void> = Promise.resolve();
  #failed: { err: unknown } | null = null;
  #bytes = 0;
  #batch: Buffer | null = null;
  #fill = 0;
  #behind = 0;
  #free: Buffer[] = [];

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

  /** Hashes `chunk` (copied: it may change once this returns). */
  update(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    if (this.#main) return this.#main.update(chunk);
    for (let at = 0; at < chunk.length;) {
      // Off the JS heap (allocUnsafeSlow): the GC never moves it while the pool reads it.
      this.#batch ??= this.#free.pop() ?? Buffer.allocUnsafeSlow(BATCH);
      const n = Math.min(chunk.length - at, BATCH - this.#fill);
      this.#batch.set(chunk.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === BATCH) this.#submit();
    }
  }

  /** Waits while more than BEHIND_MAX batches wait for the pool (bounds the memory held for it). */
  async waitBehind(): Promise<void> {
    if (this.#behind > BEHIND_MAX && !this.#failed) await this.#chain;
  }

  #submit(): void {
    const batch = this.#batch!;
    const piece = batch.subarray(0, this.#fill);
    const pool = this.#pool!;
    this.#batch = null;
    this.#fill = 0;
    this.#behind++;
    this.#chain = this.#chain.then(() => pool.update(piece)).then(
      () => { this.#behind--; if (this.#free.length < 2) this.#free.push(batch); },
      (err) => { this.#behind--; this.#failed ??= { err }; },
    );
  }

  /** DIGEST_MISMATCH unless the bytes seen hash to the digest (and number `size`, when given). Frees the hash. */
  async verify(what: string, size?: number): Promise<void> {
    if (this.#main) return this.#main.verify(what, size);
    if (this.#fill > 0) this.#submit();
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
