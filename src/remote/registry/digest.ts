// Content digests ("sha256:<hex>"): checking their syntax and verifying bytes against them, whole or
// streamed. sha256 is what registries use; sha512 is allowed by the OCI spec and costs nothing to support.
import { createHash, type Hash } from "node:crypto";
import { EodError } from "../../errors.ts";
import { sha256Stream } from "../../util/sha256.ts";

const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

/** Throws a TypeError unless `digest` is "sha256:<64 lowercase hex>" (or sha512). */
export function checkDigest(digest: string): string {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(String(digest));
  if (!m) throw new TypeError(`${JSON.stringify(digest)} is not a digest (algorithm:hex)`);
  const len = ALGORITHMS[m[1]];
  if (len === undefined) throw new TypeError(`digest algorithm ${m[1]} is not supported (sha256, sha512)`);
  if (m[2].length !== len) throw new TypeError(`${JSON.stringify(digest)} has ${m[2].length} hex digits, ${m[1]} has ${len}`);
  return digest;
}

/** "sha256:<hex>" of the bytes (part of the registry client's API; computed by src/util/sha256.ts). */
export { sha256Digest } from "../../util/sha256.ts";

/** Hashes bytes as they stream by; `verify()` at the end checks the digest and the length. */
export class DigestVerifier {
  readonly digest: string;
  #hash: Hash;
  #bytes = 0;

  constructor(digest: string) {
    this.digest = checkDigest(digest);
    const algorithm = digest.slice(0, digest.indexOf(":"));
    this.#hash = algorithm === "sha256" ? sha256Stream() : createHash(algorithm); // sha512: OCI allows it, registries rarely use it
  }

  get bytes(): number {
    return this.#bytes;
  }

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
  }

  /** DIGEST_MISMATCH unless the bytes seen hash to the digest (and number `size`, when given). */
  verify(what: string, size?: number): void {
    if (size !== undefined && this.#bytes !== size) {
      throw new EodError("DIGEST_MISMATCH", `${what}: ${this.#bytes} bytes, the descriptor says ${size}`);
    }
    const got = `${this.digest.slice(0, this.digest.indexOf(":"))}:${this.#hash.digest("hex")}`;
    if (got !== this.digest) throw new EodError("DIGEST_MISMATCH", `${what}: content has digest ${got}, expected ${this.digest}`);
  }
}

/** DIGEST_MISMATCH unless `bytes` hash to `digest`. */
export function verifyBytes(bytes: Uint8Array, digest: string, what: string, size?: number): void {
  const v = new DigestVerifier(digest);
  v.update(bytes);
  v.verify(what, size);
}
