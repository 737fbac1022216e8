// SHA-256, the one digest of the project (chunks, blobs, layers, manifests), all through node:crypto: one-shot
// on the calling thread, one-shot on the thread pool (WebCrypto's digest runs there), or incremental.
import { createHash, hash, webcrypto, type Hash } from "node:crypto";

/** The digest of `data` (32 bytes). */
export function sha256(data: Uint8Array): Buffer<ArrayBuffer> {
  return hash("sha256", data, "buffer") as unknown as Buffer<ArrayBuffer>;
}

/** The digest of `data` as lowercase hex. */
export function sha256Hex(data: Uint8Array | string): string {
  return hash("sha256", data, "hex");
}

/** The digest of `data` as OCI writes it: "sha256:<hex>". */
export function sha256Digest(data: Uint8Array): string {
  return `sha256:${sha256Hex(data)}`;
}

/** The digest of `data` computed on the thread pool; `data` must not change until this settles. */
export async function sha256OffThread(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await webcrypto.subtle.digest("SHA-256", data));
}

/** An incremental digest: update() any number of times, then digest(). */
export function sha256Stream(): Hash {
  return createHash("sha256");
}
