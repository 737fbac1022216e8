// What the daemon needs from a kernel frontend: serve the misses of a blob's cache file through the cache
// core while the blob is mounted. Each frontend (fanotify, fuse, fscache) implements this small interface.
import type { BlobCache } from "../cache/blob-cache.ts";

export interface Frontend {
  readonly name: string;
  /** Starts answering the kernel for this blob (idempotent; several mounts may share a blob). */
  attach(blob: BlobCache): void;
  /** Stops answering for this blob (no mount uses it any more). */
  detach(blobId: string): void;
  /** Stops everything; pending requests are answered (denied) first. */
  close(): Promise<void>;
  /** Counters for `eod status`. */
  stats(): Record<string, unknown>;
}
