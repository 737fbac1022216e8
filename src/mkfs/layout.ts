// Reserve, then place: decides every inode's on-disk form (compact/extended, data layout, inline tail) and
// position (nid), and the block addresses of data kept in the primary device, before a byte is written.
import {
  EROFS_DEVT_SLOT_SIZE, EROFS_INODE_CHUNK_BASED, EROFS_INODE_FLAT_INLINE, EROFS_INODE_FLAT_PLAIN, EROFS_NULL_ADDR,
  EROFS_SLOTSIZE, EROFS_SUPER_OFFSET, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
} from "../erofs/constants.ts";
import { planDirBlocks } from "../erofs/dirent.ts";
import { EROFS_INODE_COMPACT_SIZE, EROFS_INODE_EXTENDED_SIZE, fitsCompact } from "../erofs/inode.ts";
import { EROFS_SB_SIZE } from "../erofs/super.ts";
import { xattrAreaSize } from "../erofs/xattr.ts";
import type { ScanResult, TreeInode } from "./tree.ts";

/** How a regular file's data is stored; chosen by the build mode (lazy image or single image). */
export type FileShape =
  | { kind: "empty" }
  /** The whole content (i_size bytes) inline after the inode; the caller checked canInline(). */
  | { kind: "inline" }
  /** Chunk-based: one address per chunk, in blobs (indexes) or the primary device (block map). */
  | { kind: "chunks"; chunkBits: number; indexes: boolean; count: number }
  /** Flat in the primary device: full blocks, then the tail inline when it fits, else one more block. */
  | { kind: "flat" };

export interface PlacedInode {
  inode: TreeInode;
  nid: number;
  ino: number;
  extended: boolean;
  xattrSize: number;
  dataLayout: number;
  /** Bytes stored right after the inode and its xattrs (inline tail, or the chunk table after alignment). */
  inlineLen: number;
  /** Full blocks in the primary device (directory blocks, long symlinks, flat file data). */
  fullBlocks: number;
  /** First of those blocks, or EROFS_NULL_ADDR. */
  startBlk: number;
  shape?: FileShape;
  /** Directories: i_size and the index ranges of each block (entries include "." and ".."). */
  dir?: { size: number; names: Buffer[]; blocks: Array<[number, number]> };
}

export interface Layout {
  blkSz: number;
  placed: PlacedInode[];
  byInode: Map<TreeInode, PlacedInode>;
  rootNid: number;
  epoch: number;
  fixedNsec: number;
  devtSlotOff: number;
  /** Bytes of metadata (superblock, device table, inodes) before the first data block. */
  metaBlocks: number;
  /** Blocks of directory and symlink data right after the metadata. */
  metaDataBlocks: number;
  /** Blocks of flat file data after those (single images only). */
  fileDataBlocks: number;
  /** Total primary device size in blocks. */
  blocks: number;
}

export interface LayoutOptions {
  blkSzBits: number;
  extraDevices: number;
  shapeOf(inode: TreeInode): FileShape;
}

const DOT = Buffer.from(".");
const DOTDOT = Buffer.from("..");

/** Whether `len` bytes of data fit inline after the inode and its xattrs in one block. */
export function canInline(inode: TreeInode, len: number, blkSz: number, epoch?: { sec: number; nsec: number }): boolean {
  const isize = needsExtended(inode, epoch) ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE;
  return len > 0 && isize + xattrAreaSize(inode.xattrs) + len <= blkSz;
}

function needsExtended(inode: TreeInode, epoch?: { sec: number; nsec: number }): boolean {
  if (!fitsCompact(inode)) return true;
  // Kernels before 6.15 give compact inodes the superblock epoch, so only an exact match may be compact.
  return !epoch || inode.mtimeSec !== epoch.sec || inode.mtimeNsec !== epoch.nsec;
}

/** The most common mtime becomes the superblock epoch, so that most inodes can be compact. */
export function chooseEpoch(inodes: readonly TreeInode[]): { sec: number; nsec: number } {
  const counts = new Map<string, number>();
  let best = { sec: 0, nsec: 0 };
  let bestCount = 0;
  for (const i of inodes) {
    if (i.mtimeSec < 0) continue; // keep the epoch non-negative, as mkfs does
    const key = `${i.mtimeSec}.${i.mtimeNsec}`;
    const c = (counts.get(key) ?? 0) + 1;
    counts.set(key, c);
    if (c > bestCount || (c === bestCount && (i.mtimeSec < best.sec || (i.mtimeSec === best.sec && i.mtimeNsec < best.nsec)))) {
      best = { sec: i.mtimeSec, nsec: i.mtimeNsec };
      bestCount = c;
    }
  }
  return best;
}

/** Breadth-first by directory, names in byte order: siblings sit next to each other, the root comes first. */
function placementOrder(scan: ScanResult): TreeInode[] {
  const out: TreeInode[] = [scan.root];
  const seen = new Set<TreeInode>([scan.root]);
  for (let i = 0; i < out.length; i++) {
    for (const c of out[i].children ?? []) {
      if (seen.has(c.inode)) continue;
      seen.add(c.inode);
      out.push(c.inode);
    }
  }
  return out;
}

export function planLayout(scan: ScanResult, opts: LayoutOptions, epoch = chooseEpoch(scan.inodes)): Layout {
  const blkSz = 2 ** opts.blkSzBits;
  const order = placementOrder(scan);
  const devtSlotOff = (EROFS_SUPER_OFFSET + EROFS_SB_SIZE) / EROFS_DEVT_SLOT_SIZE;
  const meta = new MetaAllocator(devtSlotOff * EROFS_DEVT_SLOT_SIZE + opts.extraDevices * EROFS_DEVT_SLOT_SIZE, blkSz);
  const placed: PlacedInode[] = [];
  const byInode = new Map<TreeInode, PlacedInode>();

  for (let idx = 0; idx < order.length; idx++) {
    const inode = order[idx];
    const type = inode.mode & S_IFMT;
    const p: PlacedInode = {
      inode, nid: 0, ino: idx + 1, extended: false, xattrSize: xattrAreaSize(inode.xattrs),
      dataLayout: EROFS_INODE_FLAT_PLAIN, inlineLen: 0, fullBlocks: 0, startBlk: EROFS_NULL_ADDR,
    };
    let size = inode.size;
    let tail = 0; // bytes that would like to be inline
    let tableBytes = 0;
    let tableUnit = 1;
    if (type === S_IFDIR) {
      const names = [DOT, DOTDOT, ...inode.children!.map((c) => c.name)].sort(Buffer.compare);
      const plan = planDirBlocks(names, blkSz);
      p.dir = { size: plan.size, names, blocks: plan.blocks };
      size = plan.size;
      tail = size % blkSz;
      p.fullBlocks = Math.floor(size / blkSz);
    } else if (type === S_IFLNK) {
      tail = size % blkSz;
      p.fullBlocks = Math.floor(size / blkSz);
    } else if (type === S_IFREG) {
      const shape = opts.shapeOf(inode);
      p.shape = shape;
      if (shape.kind === "inline") {
        tail = size;
      } else if (shape.kind === "flat") {
        tail = size % blkSz;
        p.fullBlocks = Math.floor(size / blkSz);
      } else if (shape.kind === "chunks") {
        p.dataLayout = EROFS_INODE_CHUNK_BASED;
        tableUnit = shape.indexes ? 8 : 4;
        tableBytes = shape.count * tableUnit;
      }
    }
    p.extended = needsExtended({ ...inode, size }, epoch);
    const head = (p.extended ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE) + p.xattrSize;
    if (tail > 0) {
      if (head + tail <= blkSz) {
        p.dataLayout = EROFS_INODE_FLAT_INLINE;
        p.inlineLen = tail;
      } else {
        p.fullBlocks++; // the tail goes zero-padded into one more block
      }
    }
    const recordSize = (tableBytes ? Math.ceil(head / tableUnit) * tableUnit + tableBytes : head) + p.inlineLen;
    p.nid = meta.place(recordSize, p.inlineLen > 0) / EROFS_SLOTSIZE;
    placed.push(p);
    byInode.set(inode, p);
  }

  const metaBlocks = Math.ceil(meta.end / blkSz);
  let blk = metaBlocks;
  for (const p of placed) { // directory and symlink blocks first: they are metadata to a lazy image
    const type = p.inode.mode & S_IFMT;
    if (p.fullBlocks && type !== S_IFREG) { p.startBlk = blk; blk += p.fullBlocks; }
  }
  const metaDataBlocks = blk - metaBlocks;
  for (const p of placed) {
    if (p.fullBlocks && (p.inode.mode & S_IFMT) === S_IFREG) { p.startBlk = blk; blk += p.fullBlocks; }
  }
  return {
    blkSz, placed, byInode, rootNid: byInode.get(scan.root)!.nid, epoch: epoch.sec, fixedNsec: epoch.nsec,
    devtSlotOff, metaBlocks, metaDataBlocks, fileDataBlocks: blk - metaBlocks - metaDataBlocks, blocks: blk,
  };
}

/**
 * Places inode records on 32-byte slots. A record with inline data must not cross a block boundary; when it
 * does not fit in what is left of the current block, that rest becomes a gap, and later records that fit a
 * gap go there (best fit), so inline data does not cost a padded block each time (as mkfs.erofs does).
 */
class MetaAllocator {
  #end: number;
  readonly #blkSz: number;
  /** #gaps[k]: start positions of gaps of exactly k free slots. */
  readonly #gaps: number[][];

  constructor(start: number, blkSz: number) {
    this.#end = Math.ceil(start / EROFS_SLOTSIZE) * EROFS_SLOTSIZE;
    this.#blkSz = blkSz;
    this.#gaps = Array.from({ length: blkSz / EROFS_SLOTSIZE }, () => []);
  }

  get end(): number {
    return this.#end;
  }

  /** Returns the byte position of a record of `size` bytes; `inBlock` records never cross a block. */
  place(size: number, inBlock: boolean): number {
    const slots = Math.ceil(size / EROFS_SLOTSIZE);
    for (let k = slots; k < this.#gaps.length; k++) {
      const pos = this.#gaps[k].pop();
      if (pos === undefined) continue;
      if (k > slots) this.#gaps[k - slots].push(pos + slots * EROFS_SLOTSIZE);
      return pos;
    }
    if (inBlock && (this.#end % this.#blkSz) + size > this.#blkSz) {
      const rest = (this.#blkSz - (this.#end % this.#blkSz)) / EROFS_SLOTSIZE;
      this.#gaps[rest].push(this.#end);
      this.#end += rest * EROFS_SLOTSIZE;
    }
    const pos = this.#end;
    this.#end += slots * EROFS_SLOTSIZE;
    return pos;
  }
}
