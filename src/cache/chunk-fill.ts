// The fill path of chunks: their remote bytes are decoded and checked against the chunk table's sha256
// (image/verified-chunk.ts), and only bytes that matched reach the storage (a full cache filesystem: cull, then retry).
// The pieces of one checkpoint of a gzip layer's seek index decode in one pass (decodeChunks).
import { decodesWithPrevious, type ChunkTable } from "../image/chunk-table.ts";
import { plainOf, unitsOf, verifiedChunks, verifiedChunksAsync, type VerifiedChunk } from "../image/verified-chunk.ts";
import type { BlobStorage } from "./storage.ts";

/**
 * Runs that inflate up to this many plain bytes (a seek index's skipped bytes included) are decoded on the main
 * thread: a thread-pool hop costs more than that.
 */
export const SYNC_DECODE_MAX = 256 * 1024;

/** Plain bytes that decoding chunks first..last in one pass inflates: from the checkpoint (skip) through last's end. */
export function inflatedBy(table: ChunkTable, last: number): number {
  const e = table.entries[last];
  return (e.skip ?? 0) + e.plainSize;
}

/** Plain bytes that decoding chunks first..last inflates, one pass per checkpoint (each from the checkpoint). */
export function inflatedByRun(table: ChunkTable, first: number, last: number): number {
  let n = 0;
  for (let i = first; i <= last; i++) if (i === last || !decodesWithPrevious(table, i + 1)) n += inflatedBy(table, i);
  return n;
}

/** What filling a blob's chunks needs of the blob. */
export interface ChunkFillTarget {
  blobId: string;
  table: ChunkTable;
  storage: BlobStorage;
  /** Where the bytes came from, for the message of a digest mismatch. */
  remoteLocation(): string;
  /** Aborted when the blob closes: no byte is written after it. */
  signal: AbortSignal;
  /** A write failed for lack of space: free some (culling) and say whether the write is worth retrying. */
  onNoSpace(bytes: number): boolean;
  /** Counts a write retried after culling made room. */
  onNoSpaceRetry(): void;
}

/**
 * Decodes chunks first..last in one pass from the remote bytes of `last` (pieces of one checkpoint, or one
 * chunk), on this thread if `sync`, and verifies each; nothing is written yet.
 * @throws EodError DIGEST_MISMATCH when the bytes do not decode at all (a chunk that does not match is its own error)
 */
export async function decodeChunks(t: ChunkFillTarget, first: number, last: number, bytes: Uint8Array, sync: boolean): Promise<VerifiedChunk[]> {
  const what = unitsOf("chunk", t.blobId);
  return sync ? verifiedChunks(t.table, first, last, bytes, what, t.remoteLocation()) : verifiedChunksAsync(t.table, first, last, bytes, what, t.remoteLocation());
}

/**
 * Writes chunk `i`'s verified bytes at its plain offset. Marking it present is the caller's: only after this resolved.
 * @throws EodError DIGEST_MISMATCH when its bytes were not the chunk's
 */
export async function writeChunk(t: ChunkFillTarget, i: number, v: VerifiedChunk): Promise<void> {
  const data = plainOf(v);
  t.signal.throwIfAborted();
  await writeMakingRoom(t, t.table.entries[i].plainOffset, data);
}

/** Writes; when the cache filesystem is full, culling makes room and the write is tried again. */
async function writeMakingRoom(t: ChunkFillTarget, pos: number, data: Uint8Array): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await t.storage.write(pos, data);
    } catch (err) {
      if (attempt === 4 || !isNoSpace(err) || !t.onNoSpace(data.length)) throw err;
      t.onNoSpaceRetry();
      t.signal.throwIfAborted();
    }
  }
}

/** ENOSPC and its kin, from node:fs (`code`) or from src/sys (SysError `errno`). */
function isNoSpace(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return [e?.code, e?.errno].some((c) => c === "ENOSPC" || c === "EDQUOT" || c === "ENOBUFS");
}
