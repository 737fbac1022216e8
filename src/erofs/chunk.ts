// Chunk-based files (datalayout 4). i_u holds erofs_inode_chunk_info.format: bits 0..4 = chunkbits - blkszbits,
// EROFS_CHUNK_FORMAT_INDEXES selects 8-byte erofs_inode_chunk_index entries (le16 startblk_hi, le16 device_id,
// le32 startblk_lo) over 4-byte block addresses (le32, primary device only). The array starts at
// ALIGN(inode + xattrs, entry size) and has ceil(i_size / chunk size) entries; an all-ones address is a hole.
import { EodError } from "../errors.ts";
import { EROFS_CHUNK_FORMAT_48BIT, EROFS_CHUNK_FORMAT_BLKBITS_MASK, EROFS_CHUNK_FORMAT_INDEXES, EROFS_NULL_ADDR } from "./constants.ts";

export const EROFS_CHUNK_INDEX_SIZE = 8;
export const EROFS_BLOCK_MAP_ENTRY_SIZE = 4;

export interface ChunkFormat {
  /** log2 of the chunk size in bytes. */
  chunkBits: number;
  /** 8-byte indexes with device ids (true) or 4-byte block map (false). */
  indexes: boolean;
}

export function encodeChunkFormat(f: ChunkFormat, blkSzBits: number): number {
  const rel = f.chunkBits - blkSzBits;
  if (rel < 0 || rel > EROFS_CHUNK_FORMAT_BLKBITS_MASK) throw new RangeError(`Cannot encode chunk size 2^${f.chunkBits}`);
  return rel | (f.indexes ? EROFS_CHUNK_FORMAT_INDEXES : 0);
}

export function decodeChunkFormat(iU: number, blkSzBits: number, nid: number): ChunkFormat {
  const format = iU & 0xffff;
  if (format & ~(EROFS_CHUNK_FORMAT_BLKBITS_MASK | EROFS_CHUNK_FORMAT_INDEXES)) {
    const what = format & EROFS_CHUNK_FORMAT_48BIT ? "48-bit chunk format" : `chunk format 0x${format.toString(16)}`;
    throw new EodError("EROFS_UNSUPPORTED", `Cannot read inode ${nid}: unsupported ${what}`);
  }
  const chunkBits = blkSzBits + (format & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
  if (chunkBits > 52) throw new EodError("EROFS_CORRUPTED", `Cannot read inode ${nid}: chunk size 2^${chunkBits} too large`);
  return { chunkBits, indexes: (format & EROFS_CHUNK_FORMAT_INDEXES) !== 0 };
}

/** One chunk's address: a block on device `deviceId` (0 = primary), or null for a hole. */
export interface ChunkAddr {
  startBlk: number;
  deviceId: number;
}

export function encodeChunkIndex(c: ChunkAddr | null, view: DataView, at: number): void {
  if (c === null) {
    view.setUint16(at, 0, true); // hole: startblk_lo all ones; without 48BIT the kernel masks startblk to 32 bits
    view.setUint16(at + 2, 0, true);
    view.setUint32(at + 4, EROFS_NULL_ADDR, true);
    return;
  }
  if (!Number.isInteger(c.startBlk) || c.startBlk < 0 || c.startBlk >= EROFS_NULL_ADDR) {
    throw new RangeError(`Cannot encode chunk index: startBlk must be < 2^32 - 1, got ${c.startBlk}`);
  }
  view.setUint16(at, 0, true);
  view.setUint16(at + 2, c.deviceId, true);
  view.setUint32(at + 4, c.startBlk, true);
}

export function decodeChunkIndex(view: DataView, at: number): ChunkAddr | null {
  const lo = view.getUint32(at + 4, true);
  if (lo === EROFS_NULL_ADDR) return null; // pre-48BIT kernels look at the low 32 bits only
  return { startBlk: lo, deviceId: view.getUint16(at + 2, true) };
}

export function encodeBlockMapEntry(startBlk: number | null, view: DataView, at: number): void {
  view.setUint32(at, startBlk === null ? EROFS_NULL_ADDR : startBlk, true);
}

export function decodeBlockMapEntry(view: DataView, at: number): ChunkAddr | null {
  const blk = view.getUint32(at, true);
  return blk === EROFS_NULL_ADDR ? null : { startBlk: blk, deviceId: 0 };
}
