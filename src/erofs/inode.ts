// erofs_inode_compact (32 B) and erofs_inode_extended (64 B) (erofs_fs.h), decoded into one native shape.
//
// compact:  0 i_format  2 i_xattr_icount  4 i_mode  6 i_nb(nlink)  8 i_size(le32)  12 i_mtime(le32, 6.15+)
//           16 i_u  20 i_ino  24 i_uid(le16)  26 i_gid(le16)  28 reserved
// extended: 0 i_format  2 i_xattr_icount  4 i_mode  6 i_nb  8 i_size(le64)  16 i_u  20 i_ino
//           24 i_uid(le32)  28 i_gid(le32)  32 i_mtime(le64)  40 i_mtime_nsec  44 i_nlink(le32)  48 reserved[16]
import { EodError } from "../errors.ts";
import {
  EROFS_I_ALL, EROFS_INODE_CHUNK_BASED, EROFS_INODE_COMPRESSED_COMPACT, EROFS_INODE_COMPRESSED_FULL,
  EROFS_INODE_FLAT_INLINE, EROFS_INODE_FLAT_PLAIN, EROFS_INODE_LAYOUT_EXTENDED, S_IFBLK, S_IFCHR, S_IFDIR,
  S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
} from "./constants.ts";

export const EROFS_INODE_COMPACT_SIZE = 32;
export const EROFS_INODE_EXTENDED_SIZE = 64;

export interface Inode {
  /** true: erofs_inode_extended (64 B); false: erofs_inode_compact (32 B). */
  extended: boolean;
  /** EROFS_INODE_FLAT_PLAIN, FLAT_INLINE or CHUNK_BASED (compressed layouts are refused on read). */
  dataLayout: number;
  /** i_xattr_icount: 0 = no inline xattrs, else xattr area = 12 + 4 * (icount - 1) bytes. */
  xattrIcount: number;
  /** Full st_mode (type and permission bits). */
  mode: number;
  nlink: number;
  /** File size in bytes. */
  size: number;
  /** Raw i_u: start block (flat), rdev (devices) or chunk format (low 16 bits, chunk-based). */
  iU: number;
  /** i_ino: a 32-bit inode number hint (the kernel derives st_ino from the nid). */
  ino: number;
  uid: number;
  gid: number;
  /** Extended inodes: own mtime in seconds (may be negative) and nanoseconds. Compact: delta to sb.epoch. */
  mtime: number;
  mtimeNsec: number;
}

/** Size of the on-disk inode record (without xattrs and inline data). */
export function inodeSize(inode: Pick<Inode, "extended">): number {
  return inode.extended ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE;
}

/** Bytes of inline xattrs that follow the inode (erofs_xattr_ibody_size). */
export function xattrIbodySize(xattrIcount: number): number {
  return xattrIcount === 0 ? 0 : 12 + 4 * (xattrIcount - 1);
}

/** Whether the attributes fit a compact inode whose time is the superblock's epoch/fixed_nsec. */
export function fitsCompact(a: { size: number; uid: number; gid: number; nlink: number }): boolean {
  return a.size <= 0xffffffff && a.uid <= 0xffff && a.gid <= 0xffff && a.nlink <= 0xffff;
}

export function encodeInode(inode: Inode, out: Uint8Array, at: number): void {
  const size = inodeSize(inode);
  const v = new DataView(out.buffer, out.byteOffset + at, size);
  out.fill(0, at, at + size);
  v.setUint16(0, (inode.extended ? 1 : 0) | (inode.dataLayout << 1), true);
  v.setUint16(2, inode.xattrIcount, true);
  v.setUint16(4, inode.mode, true);
  v.setUint32(16, inode.iU >>> 0, true);
  v.setUint32(20, inode.ino >>> 0, true);
  if (inode.extended) {
    v.setBigUint64(8, BigInt(inode.size), true);
    v.setUint32(24, inode.uid, true);
    v.setUint32(28, inode.gid, true);
    v.setBigInt64(32, BigInt(inode.mtime), true);
    v.setUint32(40, inode.mtimeNsec, true);
    v.setUint32(44, inode.nlink, true);
  } else {
    if (!fitsCompact(inode)) throw new RangeError(`Cannot encode compact inode: attributes need an extended inode`);
    v.setUint16(6, inode.nlink, true);
    v.setUint32(8, inode.size, true);
    v.setUint32(12, inode.mtime >>> 0, true);
    v.setUint16(24, inode.uid, true);
    v.setUint16(26, inode.gid, true);
  }
}

/**
 * Decodes the inode of `nid` whose record starts at `at` in `buf`. Corrupted fields throw EROFS_CORRUPTED,
 * valid but unimplemented ones (compression) EROFS_UNSUPPORTED; messages name the nid.
 */
export function decodeInode(buf: Uint8Array, at: number, nid: number): Inode {
  if (at + 2 > buf.byteLength) throw corrupt(nid, "record is past the end of the image");
  const v = new DataView(buf.buffer, buf.byteOffset);
  const format = v.getUint16(at, true);
  const extended = (format & 1) === EROFS_INODE_LAYOUT_EXTENDED;
  const size = extended ? 64 : 32;
  if (at + size > buf.byteLength) throw corrupt(nid, "record is past the end of the image");
  if (format & ~EROFS_I_ALL) throw new EodError("EROFS_UNSUPPORTED", `Cannot read inode ${nid}: i_format 0x${format.toString(16)} has unknown bits`);
  const dataLayout = (format >> 1) & 7;
  if (format & 0x10) throw new EodError("EROFS_UNSUPPORTED", `Cannot read inode ${nid}: i_format bit 4 (NLINK_1/DOT_OMITTED) needs 6.15 features`);
  if (dataLayout === EROFS_INODE_COMPRESSED_FULL || dataLayout === EROFS_INODE_COMPRESSED_COMPACT) {
    throw new EodError("EROFS_UNSUPPORTED", `Cannot read inode ${nid}: compressed data layout ${dataLayout} is not supported`);
  }
  if (dataLayout !== EROFS_INODE_FLAT_PLAIN && dataLayout !== EROFS_INODE_FLAT_INLINE && dataLayout !== EROFS_INODE_CHUNK_BASED) {
    throw new EodError("EROFS_UNSUPPORTED", `Cannot read inode ${nid}: unsupported datalayout ${dataLayout}`);
  }
  const mode = v.getUint16(at + 4, true);
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: break;
    default: throw corrupt(nid, `bogus i_mode 0${mode.toString(8)}`);
  }
  let fileSize: number;
  if (extended) {
    const big = v.getBigUint64(at + 8, true);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(nid, `i_size ${big} is too large`);
    fileSize = Number(big);
  } else {
    fileSize = v.getUint32(at + 8, true);
  }
  return {
    extended,
    dataLayout,
    xattrIcount: v.getUint16(at + 2, true),
    mode,
    nlink: extended ? v.getUint32(at + 44, true) : v.getUint16(at + 6, true),
    size: fileSize,
    iU: v.getUint32(at + 16, true),
    ino: v.getUint32(at + 20, true),
    uid: extended ? v.getUint32(at + 24, true) : v.getUint16(at + 24, true),
    gid: extended ? v.getUint32(at + 28, true) : v.getUint16(at + 26, true),
    mtime: extended ? Number(v.getBigInt64(at + 32, true)) : v.getUint32(at + 12, true),
    mtimeNsec: extended ? v.getUint32(at + 40, true) : 0,
  };
}

function corrupt(nid: number, what: string): EodError {
  return new EodError("EROFS_CORRUPTED", `Cannot read inode ${nid}: ${what}`);
}

/** new_encode_dev(): the rdev encoding EROFS stores in i_u for character and block devices. */
export function encodeRdev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeRdev(iU: number): { major: number; minor: number } {
  return { major: (iU & 0xfff00) >>> 8, minor: (iU & 0xff) | ((iU >>> 12) & 0xfff00) };
}
