// The fill path of one chunk: its remote bytes are decoded and checked against the chunk table's sha256
// (image/verified-chunk.ts), and only bytes that matched reach the storage (a full cache filesystem: cull, then retry).
import type { ChunkTable } from "../image/chunk-table.ts";
import { verifiedChunk, verifiedChunkAsync } from "../image/verified-chunk.ts";
import type { BlobStorage } from "./storage.ts";

/** Runs up to this many plain bytes are decoded on the main thread: a thread-pool hop costs more than that. */
export const SYNC_DECODE_MAX = 256 * 1024;

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
 * Decodes chunk `i` from its remote bytes (on this thread if `sync`), verifies it and writes it at its plain
 * offset. Marking it present is the caller's: only after this resolved.
 * @throws EodError DIGEST_MISMATCH when the bytes are not the chunk's
 */
export async function fillChunk(t: ChunkFillTarget, i: number, bytes: Uint8Array, sync: boolean): Promise<void> {
  const what = `chunk ${i} of blob ${t.blobId}`;
  const data = sync ? verifiedChunk(t.table, i, bytes, what, t.remoteLocation()) : await verifiedChunkAsync(t.table, i, bytes, what, t.remoteLocation());
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
