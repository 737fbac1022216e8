// The fill path of one chunk: its remote bytes are decoded into pooled memory and checked against the chunk
// table's sha256, and only bytes that matched reach the storage (a full cache filesystem: cull, then retry).
import { createHash } from "node:crypto";
import { EodError } from "../errors.ts";
import { CHUNK_FLAG_RAW, type ChunkTable } from "../image/chunk-table.ts";
import { decompressChunkInto, decompressChunkIntoAsync } from "../image/codec.ts";
import type { BufferPool } from "../util/buffer-pool.ts";
import type { BlobStorage } from "./storage.ts";

/** Runs up to this many plain bytes are decoded on the main thread: a thread-pool hop costs more than that. */
export const SYNC_DECODE_MAX = 256 * 1024;

/** What filling a blob's chunks needs of the blob. */
export interface ChunkFillTarget {
  blobId: string;
  table: ChunkTable;
  storage: BlobStorage;
  pool: BufferPool;
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
  const e = t.table.entries[i];
  const what = `chunk ${i} of blob ${t.blobId}`;
  const raw = (e.flags & CHUNK_FLAG_RAW) !== 0;
  const plain = raw ? null : t.pool.take(e.plainSize);
  try {
    if (plain && sync) decompressChunkInto(t.table.compression, bytes, plain, what);
    else if (plain) await decompressChunkIntoAsync(t.table.compression, bytes, plain, what);
    const data = plain ?? bytes;
    if (data.length !== e.plainSize || !createHash("sha256").update(data).digest().equals(e.digest)) {
      throw new EodError("DIGEST_MISMATCH", `Digest mismatch in ${what} from ${t.remoteLocation()}`);
    }
    t.signal.throwIfAborted();
    await writeMakingRoom(t, e.plainOffset, data);
  } finally {
    if (plain) t.pool.give(plain);
  }
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
