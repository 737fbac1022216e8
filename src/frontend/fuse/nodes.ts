// Where the FUSE frontend's files live and the node IDs they have: pure, so the holder, the mount step and a
// restarted daemon compute the same names without the process that first exposed them.
import path from "node:path";
import { EodError } from "../../errors.ts";
import { sha256Hex } from "../../util/sha256.ts";
import { FUSE_ROOT_ID } from "./protocol.ts";

/** The FUSE mount of a cache directory: one read-only file per blob served, named by its id. */
export function fuseMountDir(cacheDir: string): string {
  return path.join(cacheDir, "fuse");
}

/** The file a blob is exposed as (what erofs gets as `device=`, or a loop device is set up over). */
export function fuseBlobPath(cacheDir: string, blobId: string): string {
  return path.join(fuseMountDir(cacheDir), blobId);
}

/**
 * A blob's node ID (also its inode number): 60 bits of sha256(id), above the root's 1. Derived from the id
 * alone, so a restarted daemon answers requests about nodes the kernel learned from its predecessor.
 */
export function nodeIdOf(blobId: string): bigint {
  return BigInt(`0x${sha256Hex(blobId).slice(0, 15)}`) + FUSE_ROOT_ID + 1n;
}

/** Node ID → blob id of the blobs exposed; refuses a second id on a node ID already taken (a 60-bit collision). */
export class NodeTable {
  readonly #ids = new Map<bigint, string>();

  add(blobId: string): bigint {
    const node = nodeIdOf(blobId);
    const had = this.#ids.get(node);
    if (had !== undefined && had !== blobId) {
      throw new EodError("IMAGE_INVALID", `Blobs ${had} and ${blobId} have the same FUSE node ID ${node}: they cannot be served at once`);
    }
    this.#ids.set(node, blobId);
    return node;
  }

  delete(blobId: string): void {
    const node = nodeIdOf(blobId);
    if (this.#ids.get(node) === blobId) this.#ids.delete(node);
  }

  blobOf(node: bigint): string | undefined {
    return this.#ids.get(node);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Blob ids in name order (a directory listing). */
  ids(): string[] {
    return [...this.#ids.values()].sort();
  }
}
