// Flush: serializes the placed inodes, their xattrs, inline data, chunk tables and directory blocks, the
// device table and last the superblock with its checksum, into the metadata region of the primary device.
import {
  EROFS_DEVT_SLOT_SIZE, EROFS_FEATURE_COMPAT_MTIME, EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_INODE_CHUNK_BASED,
  EROFS_NULL_ADDR, EROFS_SLOTSIZE, fileTypeOfMode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
} from "../erofs/constants.ts";
import { encodeBlockMapEntry, encodeChunkFormat, encodeChunkIndex, type ChunkAddr } from "../erofs/chunk.ts";
import { encodeDeviceSlot, type DeviceSlot } from "../erofs/devt.ts";
import { encodeDirBlock, type Dirent } from "../erofs/dirent.ts";
import { encodeInode, encodeRdev, inodeSize } from "../erofs/inode.ts";
import { encodeSuperBlock, sealSuperBlock } from "../erofs/super.ts";
import { encodeXattrs, xattrIcountOf } from "../erofs/xattr.ts";
import { sha256 } from "../util/sha256.ts";
import type { Layout, PlacedInode } from "./layout.ts";
import type { ScanResult, TreeInode } from "./tree.ts";

export interface MetadataInputs {
  scan: ScanResult;
  layout: Layout;
  blkSzBits: number;
  devices: readonly DeviceSlot[];
  featureIncompat: number;
  /** Chunk addresses of a chunk-based file (one per chunk, null = hole). */
  chunkAddrs(inode: TreeInode): ReadonlyArray<ChunkAddr | null>;
  /** The bytes stored inline for a regular file (its whole content or its tail). */
  inlineData(inode: TreeInode): Uint8Array;
  /** Primary blocks in use, if the data pass appended blocks after the layout's plan. */
  totalBlocks?: number;
}

/**
 * Returns the primary device's metadata region: blocks [0, metaBlocks + metaDataBlocks). File data of a single
 * image (blocks after that) is written separately by the caller.
 */
export function writeMetadata(inp: MetadataInputs): Uint8Array {
  const { layout, scan } = inp;
  const blkSz = layout.blkSz;
  const out = new Uint8Array((layout.metaBlocks + layout.metaDataBlocks) * blkSz);
  const view = new DataView(out.buffer);
  const parents = parentMap(scan);

  for (const p of layout.placed) {
    const i = p.inode;
    const type = i.mode & S_IFMT;
    const iloc = p.nid * EROFS_SLOTSIZE;
    const size = type === S_IFDIR ? p.dir!.size : i.size;
    let iU = 0;
    if (type === S_IFCHR || type === S_IFBLK) iU = encodeRdev(i.rdevMajor, i.rdevMinor);
    else if (p.dataLayout === EROFS_INODE_CHUNK_BASED) {
      const shape = p.shape!;
      if (shape.kind !== "chunks") throw new Error("internal: chunk-based inode without chunks");
      iU = encodeChunkFormat({ chunkBits: shape.chunkBits, indexes: shape.indexes }, inp.blkSzBits);
    } else if (p.fullBlocks) iU = p.startBlk;
    else if (p.inlineLen) iU = EROFS_NULL_ADDR; // FLAT_INLINE without full blocks, as mkfs writes it
    encodeInode({
      extended: p.extended, dataLayout: p.dataLayout, xattrIcount: xattrIcountOf(p.xattrSize), mode: i.mode,
      nlink: i.nlink, size, iU, ino: p.ino, uid: i.uid, gid: i.gid,
      mtime: p.extended ? i.mtimeSec : 0, mtimeNsec: p.extended ? i.mtimeNsec : 0,
    }, out, iloc);
    let pos = iloc + inodeSize(p);
    pos += encodeXattrs(i.xattrs, out, pos);

    if (p.dataLayout === EROFS_INODE_CHUNK_BASED) {
      const shape = p.shape as { kind: "chunks"; indexes: boolean; count: number };
      const addrs = inp.chunkAddrs(i);
      if (addrs.length !== shape.count) throw new Error(`internal: ${addrs.length} chunk addresses for ${shape.count} chunks`);
      const unit = shape.indexes ? 8 : 4;
      pos = Math.ceil(pos / unit) * unit;
      for (const a of addrs) {
        if (shape.indexes) encodeChunkIndex(a, view, pos);
        else encodeBlockMapEntry(a === null ? null : a.startBlk, view, pos);
        pos += unit;
      }
      continue;
    }
    if (type === S_IFREG) {
      if (p.inlineLen) out.set(inp.inlineData(i).subarray(0, p.inlineLen), pos);
      continue; // flat file blocks belong to the caller's data pass
    }
    const data = type === S_IFDIR ? dirBytes(p, layout, parents) : type === S_IFLNK ? i.target! : null;
    if (!data) continue;
    const fullBytes = Math.min(data.length, p.fullBlocks * blkSz);
    if (p.fullBlocks) out.set(data.subarray(0, fullBytes), p.startBlk * blkSz);
    if (p.inlineLen) out.set(data.subarray(data.length - p.inlineLen), pos);
  }

  for (let k = 0; k < inp.devices.length; k++) {
    encodeDeviceSlot(inp.devices[k], out, layout.devtSlotOff * EROFS_DEVT_SLOT_SIZE + k * EROFS_DEVT_SLOT_SIZE);
  }
  const sb = {
    featureCompat: EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME,
    blkSzBits: inp.blkSzBits, rootNid: layout.rootNid, inos: layout.placed.length, epoch: layout.epoch,
    fixedNsec: layout.fixedNsec, blocks: inp.totalBlocks ?? layout.blocks, metaBlkAddr: 0, xattrBlkAddr: 0,
    uuid: new Uint8Array(16), volumeName: "", featureIncompat: inp.featureIncompat,
    extraDevices: inp.devices.length, devtSlotOff: inp.devices.length ? layout.devtSlotOff : 0,
  };
  encodeSuperBlock(sb, out);
  // Same tree, same bytes: the UUID is derived from the metadata itself instead of drawn at random.
  sb.uuid = sha256(out).subarray(0, 16);
  encodeSuperBlock(sb, out);
  sealSuperBlock(out, blkSz);
  return out;
}

function parentMap(scan: ScanResult): Map<TreeInode, TreeInode> {
  const parents = new Map<TreeInode, TreeInode>([[scan.root, scan.root]]);
  for (const dir of scan.inodes) {
    for (const c of dir.children ?? []) if ((c.inode.mode & S_IFMT) === S_IFDIR) parents.set(c.inode, dir);
  }
  return parents;
}

/** The directory's data: i_size bytes, blocks padded with zeros, "." and ".." pointing at itself and its parent. */
function dirBytes(p: PlacedInode, layout: Layout, parents: Map<TreeInode, TreeInode>): Uint8Array {
  const { size, names, blocks } = p.dir!;
  const blkSz = layout.blkSz;
  const byName = new Map<string, TreeInode>();
  for (const c of p.inode.children!) byName.set(c.name.toString("latin1"), c.inode);
  byName.set(".", p.inode);
  byName.set("..", parents.get(p.inode)!);
  const out = new Uint8Array(blocks.length * blkSz);
  blocks.forEach(([a, b], k) => {
    const entries: Dirent[] = names.slice(a, b).map((name) => {
      const target = byName.get(name.toString("latin1"))!;
      return { name, nid: layout.byInode.get(target)!.nid, fileType: fileTypeOfMode(target.mode) };
    });
    encodeDirBlock(entries, out, k * blkSz);
  });
  return out.subarray(0, size);
}
