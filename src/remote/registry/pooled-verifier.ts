// A streamed blob's digest check, with the async interface of the former thread-pool hasher (its SHA-256
// bound node's OpenSSL through FFI, which src/sys no longer does): the hashing is DigestVerifier's, on the
// main thread, as for sha512. Same checks and errors as DigestVerifier.
import { DigestVerifier } from "./digest.ts";

export class PooledVerifier {
  readonly digest: string;
  readonly #v: DigestVerifier;

  constructor(digest: string) {
    this.#v = new DigestVerifier(digest); // checks the digest's form
    this.digest = this.#v.digest;
  }

  /** Bytes given to update() so far. */
  get bytes(): number {
    return this.#v.bytes;
  }

  /** Hashes `chunk` now (it may change once this returns). */
  update(chunk: Uint8Array): void {
    this.#v.update(chunk);
  }

  /** Nothing is queued: returns at once. */
  async waitBehind(): Promise<void> {}

  /** DIGEST_MISMATCH unless the bytes seen hash to the digest (and number `size`, when given). */
  async verify(what: string, size?: number): Promise<void> {
    this.#v.verify(what, size);
  }

  /** Nothing to free. */
  async close(): Promise<void> {}
}
