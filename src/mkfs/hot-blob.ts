// The hot blob of a layer build with a prefetch list. Listed files' chunks are spooled (compressed, in a blob
// file of their own) as the layers stream by, in stream order; once the tree is final, they are copied into
// the hot blob in the order the mount's prefetch asks for them, so it reads them in a few large requests.
// Chunks nothing refers to any more (a listed file a later layer replaced or deleted) are left out.
import { writeAll } from "./blob-writer.ts";
import fs from "node:fs/promises";
import type { ChunkEntry, ChunkTable } from "../image/chunk-table.ts";
import { sha256Stream } from "../util/sha256.ts";

export interface HotBlob {
  table: ChunkTable;
  remoteDigest: string;
  /** The hot blob's first block for a spooled chunk's first block (spool's kernel form). */
  blockOf: Map<number, number>;
}

/** Bytes per write of the hot blob. */
const BATCH = 1 << 20;

/**
 * Writes `out` from the spool's chunks: those starting at the blocks in `first` (in that order), then the
 * rest of `referenced`, in spool order.
 */
export async function writeHotBlob(spoolPath: string, spool: ChunkTable, first: readonly number[], referenced: ReadonlySet<number>, out: string): Promise<HotBlob> {
  const blkSz = 2 ** spool.blkSzBits;
  const byBlock = new Map(spool.entries.map((e) => [e.plainOffset / blkSz, e]));
  const order = [...new Set([...first, ...spool.entries.map((e) => e.plainOffset / blkSz).filter((b) => referenced.has(b))])];
  const entries: ChunkEntry[] = [];
  const blockOf = new Map<number, number>();
  const hash = sha256Stream();
  const src = await fs.open(spoolPath, "r");
  const dst = await fs.open(out, "w", 0o644);
  try {
    let batch = Buffer.allocUnsafe(BATCH);
    let fill = 0;
    let plainEnd = 0;
    let remoteEnd = 0;
    const flush = async () => {
      hash.update(batch.subarray(0, fill));
      await writeAll(dst.fd, batch.subarray(0, fill), remoteEnd - fill); // a short write would break the digest
      fill = 0;
    };
    for (const blk of order) {
      const e = byBlock.get(blk)!;
      if (fill + e.remoteSize > batch.length) {
        await flush();
        if (e.remoteSize > batch.length) batch = Buffer.allocUnsafe(e.remoteSize);
      }
      const { bytesRead } = await src.read(batch, fill, e.remoteSize, e.remoteOffset);
      if (bytesRead !== e.remoteSize) throw new Error(`internal: hot spool ended at ${e.remoteOffset + bytesRead}`);
      fill += e.remoteSize;
      entries.push({ ...e, plainOffset: plainEnd, remoteOffset: remoteEnd });
      blockOf.set(blk, plainEnd / blkSz);
      plainEnd += Math.ceil(e.plainSize / blkSz) * blkSz;
      remoteEnd += e.remoteSize;
    }
    await flush();
    return {
      table: { compression: spool.compression, blkSzBits: spool.blkSzBits, kernelSize: plainEnd, remoteSize: remoteEnd, entries },
      remoteDigest: `sha256:${hash.digest("hex")}`,
      blockOf,
    };
  } finally {
    await src.close();
    await dst.close();
  }
}
