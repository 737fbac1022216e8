// mapBlocks(): logical file offset -> (device, physical byte address, length), the one mapping every read path
// uses (the reader, `eod check` and later the frontends), after the kernel's erofs_map_blocks().
import { EodError } from "../errors.ts";
import { EROFS_INODE_CHUNK_BASED, EROFS_INODE_FLAT_INLINE, EROFS_INODE_FLAT_PLAIN, EROFS_NULL_ADDR } from "./constants.ts";
import { decodeBlockMapEntry, decodeChunkFormat, decodeChunkIndex, EROFS_BLOCK_MAP_ENTRY_SIZE, EROFS_CHUNK_INDEX_SIZE } from "./chunk.ts";
import { inodeSize, xattrIbodySize, type Inode } from "./inode.ts";

export interface BlockMap {
  /** Logical start of this extent in the file. */
  la: number;
  /** Length of the extent in bytes (never past round_up(i_size, blksz); inline extents end at i_size). */
  len: number;
  /** Unmapped extents (holes, or reads past EOF) read as zeros. */
  mapped: boolean;
  /** Inline data lives inside the metadata right after the inode (EROFS_MAP_META). */
  meta: boolean;
  /** Device: 0 = primary, k = device-table slot k (or resolved through the unified address space). */
  deviceId: number;
  /** Physical byte address on that device. */
  pa: number;
}

export interface MapContext {
  blkSzBits: number;
  /** Byte position of the inode (iloc). */
  iloc: number;
  /** Reads `length` metadata bytes at byte `pos` of the primary device. */
  readMeta(pos: number, length: number): Uint8Array;
}

/** Byte offset of the first chunk-index entry of a chunk-based inode (aligned to the entry size). */
export function chunkTablePos(inode: Inode, iloc: number, entrySize: number): number {
  const end = iloc + inodeSize(inode) + xattrIbodySize(inode.xattrIcount);
  return Math.ceil(end / entrySize) * entrySize;
}

export function mapBlocks(inode: Inode, nid: number, la: number, ctx: MapContext): BlockMap {
  const blkSz = 2 ** ctx.blkSzBits;
  const unmapped = (len: number): BlockMap => ({ la, len, mapped: false, meta: false, deviceId: 0, pa: 0 });
  if (la >= inode.size) return unmapped(0); // leave out-of-bound access unmapped
  if (inode.dataLayout === EROFS_INODE_FLAT_PLAIN || inode.dataLayout === EROFS_INODE_FLAT_INLINE) {
    const inline = inode.dataLayout === EROFS_INODE_FLAT_INLINE;
    const nblocks = Math.ceil(inode.size / blkSz);
    const lastBlk = inline ? nblocks - 1 : nblocks;
    if (la < lastBlk * blkSz) {
      if (inode.iU === EROFS_NULL_ADDR) throw new EodError("EROFS_CORRUPTED", `Cannot map inode ${nid}: data blocks have no start address`);
      return { la, len: lastBlk * blkSz - la, mapped: true, meta: false, deviceId: 0, pa: inode.iU * blkSz + la };
    }
    const pa = ctx.iloc + inodeSize(inode) + xattrIbodySize(inode.xattrIcount) + (la % blkSz);
    const len = inode.size - la;
    // inline data should be located in one meta block
    if ((pa % blkSz) + len > blkSz) throw new EodError("EROFS_CORRUPTED", `Cannot map inode ${nid}: inline data crosses a block boundary`);
    return { la, len, mapped: true, meta: true, deviceId: 0, pa };
  }
  if (inode.dataLayout !== EROFS_INODE_CHUNK_BASED) {
    throw new EodError("EROFS_UNSUPPORTED", `Cannot map inode ${nid}: data layout ${inode.dataLayout} is not supported`);
  }
  const fmt = decodeChunkFormat(inode.iU, ctx.blkSzBits, nid);
  const chunkSize = 2 ** fmt.chunkBits;
  const chunk = Math.floor(la / chunkSize);
  const unit = fmt.indexes ? EROFS_CHUNK_INDEX_SIZE : EROFS_BLOCK_MAP_ENTRY_SIZE;
  const pos = chunkTablePos(inode, ctx.iloc, unit) + unit * chunk;
  const entry = ctx.readMeta(pos, unit);
  const view = new DataView(entry.buffer, entry.byteOffset, unit);
  const addr = fmt.indexes ? decodeChunkIndex(view, 0) : decodeBlockMapEntry(view, 0);
  const chunkStart = chunk * chunkSize;
  const chunkLen = Math.min(chunkSize, Math.ceil((inode.size - chunkStart) / blkSz) * blkSz);
  const len = chunkLen - (la - chunkStart);
  if (addr === null) return unmapped(len);
  return { la, len, mapped: true, meta: false, deviceId: addr.deviceId, pa: addr.startBlk * blkSz + (la - chunkStart) };
}
