// Directory data (erofs_fs.h struct erofs_dirent, 12 B: le64 nid, le16 nameoff, u8 file_type, u8 reserved).
// A directory is a run of independent blocks; each holds its dirents, then their names back to back without
// NULs. de[0].nameoff / 12 is the dirent count of the block. Entries, "." and ".." included, are sorted by
// memcmp across all blocks, and no dirent or name crosses a block boundary.
import { EodError } from "../errors.ts";
import { EROFS_NAME_LEN } from "./constants.ts";

export const EROFS_DIRENT_SIZE = 12;

export interface Dirent {
  name: Uint8Array;
  nid: number;
  fileType: number;
}

/** memcmp order of names, a shorter prefix first: the order lookups binary-search on. */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/**
 * Splits sorted entries into blocks. Returns, per block, the index range of its entries, and the directory's
 * i_size: full blocks plus the bytes used in the last one (so the last block can be inlined).
 */
export function planDirBlocks(names: readonly Uint8Array[], blkSz: number): { blocks: Array<[number, number]>; size: number } {
  const blocks: Array<[number, number]> = [];
  let start = 0;
  let used = 0;
  for (let i = 0; i < names.length; i++) {
    const need = EROFS_DIRENT_SIZE + names[i].length;
    if (used + need > blkSz) {
      blocks.push([start, i]);
      start = i;
      used = 0;
    }
    used += need;
  }
  blocks.push([start, names.length]);
  return { blocks, size: (blocks.length - 1) * blkSz + used };
}

/** Encodes one directory block holding `entries` into `out` at `at` (bytes after the names are left as they are). */
export function encodeDirBlock(entries: readonly Dirent[], out: Uint8Array, at: number): number {
  const v = new DataView(out.buffer, out.byteOffset);
  let nameOff = entries.length * EROFS_DIRENT_SIZE;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const p = at + i * EROFS_DIRENT_SIZE;
    v.setBigUint64(p, BigInt(e.nid), true);
    v.setUint16(p + 8, nameOff, true);
    v.setUint8(p + 10, e.fileType);
    v.setUint8(p + 11, 0);
    out.set(e.name, at + nameOff);
    nameOff += e.name.length;
  }
  return nameOff;
}

/**
 * Decodes one directory block. `used` is the number of meaningful bytes (blkSz, or what i_size leaves for
 * the last block); the last name ends at the first NUL or at `used`.
 */
export function decodeDirBlock(block: Uint8Array, used: number, nid: number, blockIndex: number): Dirent[] {
  const bad = (what: string) =>
    new EodError("EROFS_CORRUPTED", `Cannot read directory ${nid}, block ${blockIndex}: ${what}`);
  if (used < EROFS_DIRENT_SIZE) throw bad(`only ${used} bytes`);
  const v = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const first = v.getUint16(8, true);
  if (first < EROFS_DIRENT_SIZE || first >= used || first % EROFS_DIRENT_SIZE !== 0) throw bad(`bogus first nameoff ${first}`);
  const count = first / EROFS_DIRENT_SIZE;
  const out: Dirent[] = [];
  for (let i = 0; i < count; i++) {
    const p = i * EROFS_DIRENT_SIZE;
    const nameOff = v.getUint16(p + 8, true);
    let end: number;
    if (i + 1 < count) {
      end = v.getUint16(p + EROFS_DIRENT_SIZE + 8, true);
    } else {
      const nul = block.subarray(nameOff, used).indexOf(0);
      end = nul < 0 ? used : nameOff + nul;
    }
    if (nameOff < first || nameOff >= used || end <= nameOff || end > used) throw bad(`bogus nameoff ${nameOff} of entry ${i}`);
    if (end - nameOff > EROFS_NAME_LEN) throw bad(`name of entry ${i} is ${end - nameOff} bytes`);
    const bigNid = v.getBigUint64(p, true);
    if (bigNid > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`nid ${bigNid} of entry ${i} out of range`);
    out.push({ name: Uint8Array.from(block.subarray(nameOff, end)), nid: Number(bigNid), fileType: v.getUint8(p + 10) });
  }
  return out;
}
