// ErofsReader: decodes an image through byte sources (primary device + extra devices). Pure: the caller
// supplies read(); every address is bounds-checked so that a corrupted image gives EROFS_CORRUPTED, never a
// crash or a hang (directory loops and absurd sizes are refused).
import { EodError } from "../errors.ts";
import {
  EROFS_DEVT_SLOT_SIZE, EROFS_FT_DIR, EROFS_INODE_CHUNK_BASED, EROFS_INODE_FLAT_INLINE, EROFS_INODE_FLAT_PLAIN,
  EROFS_NULL_ADDR, EROFS_SLOTSIZE, EROFS_SUPER_OFFSET, fileTypeOfMode, S_IFDIR, S_IFLNK, S_IFMT,
} from "./constants.ts";
import { decodeBlockMapEntry, decodeChunkFormat, decodeChunkIndex, EROFS_BLOCK_MAP_ENTRY_SIZE, EROFS_CHUNK_INDEX_SIZE, type ChunkAddr } from "./chunk.ts";
import { decodeDeviceSlot, type DeviceSlot } from "./devt.ts";
import { compareNames, decodeDirBlock, type Dirent } from "./dirent.ts";
import { decodeInode, inodeSize, xattrIbodySize, type Inode } from "./inode.ts";
import { escapeName, escapePath, parsePath } from "./printable-name.ts";
import { chunkTablePos, mapBlocks, type BlockMap } from "./map.ts";
import { decodeSuperBlock, type SuperBlock } from "./super.ts";
import { decodeXattrs, type Xattr } from "./xattr.ts";

/** Random-access bytes of one device (the bootstrap, a blob's kernel form, a whole image). */
export interface ByteSource {
  readonly size: number;
  /** Returns exactly `length` bytes at `pos`; callers never ask past `size`. */
  read(pos: number, length: number): Uint8Array;
}

/** An in-memory ByteSource. */
export function bufferSource(buf: Uint8Array): ByteSource {
  return { size: buf.byteLength, read: (pos, length) => buf.subarray(pos, pos + length) };
}

export interface LoadedInode extends Inode {
  nid: number;
  /** Byte position of the inode on the primary device. */
  iloc: number;
}

/** Where a chunk of a chunk-based file lives: a block on a device (0 = primary), or null for a hole. */
export interface FileChunk {
  index: number;
  /** Logical byte offset and mapped length (the last chunk maps round_up(rest, blksz)). */
  la: number;
  len: number;
  addr: ChunkAddr | null;
}

const MAX_DIR_DEPTH = 4096;
/** One read() returns at most this much (a sparse file can be far larger than memory). */
export const MAX_READ = 1 << 30;

export class ErofsReader {
  readonly sb: SuperBlock;
  readonly blkSz: number;
  readonly devices: DeviceSlot[];
  readonly #primary: ByteSource;
  readonly #extra: ReadonlyArray<ByteSource | undefined>;
  readonly #deviceIdMask: number;

  /**
   * @param primary the image (or bootstrap) itself
   * @param extra the extra devices in device-table order (slot 1 is extra[0]); may be omitted when only
   *   metadata is read
   */
  constructor(primary: ByteSource, extra: ReadonlyArray<ByteSource | undefined> = []) {
    this.#primary = primary;
    this.#extra = extra;
    const headLen = Math.min(primary.size, 4096);
    this.sb = decodeSuperBlock(primary.read(0, headLen));
    this.blkSz = 2 ** this.sb.blkSzBits;
    if (this.sb.blocks * this.blkSz > primary.size) {
      throw new EodError("EROFS_CORRUPTED", `Image is truncated: superblock says ${this.sb.blocks} blocks of ${this.blkSz} bytes, file has ${primary.size} bytes`);
    }
    this.devices = [];
    for (let i = 0; i < this.sb.extraDevices; i++) {
      const at = this.sb.devtSlotOff * EROFS_DEVT_SLOT_SIZE + i * EROFS_DEVT_SLOT_SIZE;
      this.devices.push(decodeDeviceSlot(this.#readPrimary(at, EROFS_DEVT_SLOT_SIZE, `device slot ${i}`), 0, i));
    }
    let pow = 1;
    while (pow < this.sb.extraDevices + 1) pow *= 2;
    this.#deviceIdMask = pow - 1;
  }

  #readPrimary(pos: number, length: number, what: string): Uint8Array {
    if (!Number.isSafeInteger(pos) || pos < 0 || length < 0 || pos + length > this.#primary.size) {
      throw new EodError("EROFS_CORRUPTED", `Cannot read ${what}: bytes ${pos}..${pos + length} are outside the image (${this.#primary.size} bytes)`);
    }
    return this.#primary.read(pos, length);
  }

  /** Byte position of inode `nid`. */
  iloc(nid: number): number {
    return this.sb.metaBlkAddr * this.blkSz + nid * EROFS_SLOTSIZE;
  }

  inode(nid: number): LoadedInode {
    const iloc = this.iloc(nid);
    if (!Number.isSafeInteger(iloc) || iloc + 32 > this.#primary.size) {
      throw new EodError("EROFS_CORRUPTED", `Cannot read inode ${nid}: position ${iloc} is outside the image`);
    }
    const first = this.#readPrimary(iloc, Math.min(64, this.#primary.size - iloc), `inode ${nid}`);
    const inode = decodeInode(first, 0, nid);
    const end = iloc + inodeSize(inode) + xattrIbodySize(inode.xattrIcount);
    if (end > this.#primary.size) throw new EodError("EROFS_CORRUPTED", `Cannot read inode ${nid}: xattrs run past the image end`);
    return { ...inode, nid, iloc };
  }

  root(): LoadedInode {
    const root = this.inode(this.sb.rootNid);
    if ((root.mode & S_IFMT) !== S_IFDIR) throw new EodError("EROFS_CORRUPTED", `Root inode ${root.nid} is not a directory`);
    return root;
  }

  /** mtime of an inode as the kernel (6.15+) reports it. */
  mtimeOf(inode: Inode): { sec: number; nsec: number } {
    return inode.extended ? { sec: inode.mtime, nsec: inode.mtimeNsec } : { sec: this.sb.epoch + inode.mtime, nsec: this.sb.fixedNsec };
  }

  xattrs(inode: LoadedInode): Xattr[] {
    const size = xattrIbodySize(inode.xattrIcount);
    if (size === 0) return [];
    const area = this.#readPrimary(inode.iloc + inodeSize(inode), size, `xattrs of inode ${inode.nid}`);
    return decodeXattrs(area, inode.nid, (id) => {
      const pos = this.sb.xattrBlkAddr * this.blkSz + id * 4;
      return this.#readPrimary(pos, Math.min(4 + 255 + 65535, this.#primary.size - pos), `shared xattr ${id}`);
    });
  }

  map(inode: LoadedInode, la: number): BlockMap {
    const m = mapBlocks(inode, inode.nid, la, {
      blkSzBits: this.sb.blkSzBits,
      iloc: inode.iloc,
      readMeta: (pos, length) => this.#readPrimary(pos, length, `chunk index of inode ${inode.nid}`),
    });
    if (m.mapped && !m.meta) return this.#resolveDevice(m, inode.nid);
    return m;
  }

  /** Applies the device-id mask and the unified address space (erofs_map_dev()). */
  #resolveDevice(m: BlockMap, nid: number): BlockMap {
    let deviceId = m.deviceId & this.#deviceIdMask;
    let pa = m.pa;
    if (deviceId > this.sb.extraDevices) {
      throw new EodError("EROFS_CORRUPTED", `Cannot map inode ${nid}: device id ${deviceId} but the image has ${this.sb.extraDevices} extra devices`);
    }
    if (deviceId === 0 && this.devices.length > 0) {
      for (let i = 0; i < this.devices.length; i++) {
        const d = this.devices[i];
        if (!d.uniAddr) continue;
        const start = d.uniAddr * this.blkSz;
        if (pa >= start && pa < start + d.blocks * this.blkSz) {
          deviceId = i + 1;
          pa -= start;
          break;
        }
      }
    }
    // Bound by the device we were given; else by its slot (mkfs.erofs 1.5 leaves blocks at 0 there).
    const given = deviceId === 0 ? this.#primary : this.#extra[deviceId - 1];
    const slotBlocks = deviceId === 0 ? 0 : this.devices[deviceId - 1].blocks;
    const limit = given ? given.size : slotBlocks ? slotBlocks * this.blkSz : Number.MAX_SAFE_INTEGER;
    if (pa + m.len > limit && !(deviceId === 0 && pa + m.len <= Math.ceil(limit / this.blkSz) * this.blkSz)) {
      throw new EodError("EROFS_CORRUPTED", `Cannot map inode ${nid} at ${m.la}: bytes ${pa}..${pa + m.len} are past the end of device ${deviceId}`);
    }
    return { ...m, deviceId, pa };
  }

  /** Reads `length` bytes of file data at `pos` (clipped to i_size); holes read as zeros. */
  read(inode: LoadedInode, pos: number, length: number): Uint8Array {
    this.#checkDataBounds(inode);
    const end = Math.min(inode.size, pos + length);
    if (end - pos > MAX_READ) throw new RangeError(`Cannot read ${end - pos} bytes at once (limit ${MAX_READ}); read in pieces`);
    const out = new Uint8Array(Math.max(0, end - pos));
    let at = pos;
    while (at < end) {
      const m = this.map(inode, at);
      if (m.len <= 0) throw new EodError("EROFS_CORRUPTED", `Cannot read inode ${inode.nid} at ${at}: empty extent`);
      const n = Math.min(m.len, end - at);
      if (m.mapped) out.set(this.#readDevice(m.deviceId, m.pa, n, inode.nid), at - pos);
      at += n;
    }
    return out;
  }

  #readDevice(deviceId: number, pa: number, length: number, nid: number): Uint8Array {
    if (deviceId === 0) {
      // The last block of an image may be short on disk (mkfs pads only up to i_size); read what is there.
      const avail = Math.max(0, Math.min(length, this.#primary.size - pa));
      const bytes = this.#readPrimary(pa, avail, `data of inode ${nid}`);
      if (avail === length) return bytes;
      const padded = new Uint8Array(length);
      padded.set(bytes);
      return padded;
    }
    const src = this.#extra[deviceId - 1];
    if (!src) throw new EodError("EROFS_UNSUPPORTED", `Cannot read data of inode ${nid}: device ${deviceId} (${this.devices[deviceId - 1]?.tag}) was not provided`);
    if (pa + length > src.size) throw new EodError("EROFS_CORRUPTED", `Cannot read data of inode ${nid}: bytes ${pa}..${pa + length} are past the end of device ${deviceId} (${src.size} bytes)`);
    return src.read(pa, length);
  }

  /** The chunk list of a chunk-based inode (indexes or block map), without reading any data. */
  chunks(inode: LoadedInode): FileChunk[] {
    if (inode.dataLayout !== EROFS_INODE_CHUNK_BASED) return [];
    const fmt = decodeChunkFormat(inode.iU, this.sb.blkSzBits, inode.nid);
    const chunkSize = 2 ** fmt.chunkBits;
    const count = Math.ceil(inode.size / chunkSize);
    const unit = fmt.indexes ? EROFS_CHUNK_INDEX_SIZE : EROFS_BLOCK_MAP_ENTRY_SIZE;
    const start = chunkTablePos(inode, inode.iloc, unit);
    const table = this.#readPrimary(start, count * unit, `chunk table of inode ${inode.nid} (${count} chunks)`);
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const out: FileChunk[] = [];
    for (let i = 0; i < count; i++) {
      const la = i * chunkSize;
      const len = Math.min(chunkSize, Math.ceil((inode.size - la) / this.blkSz) * this.blkSz);
      let addr = fmt.indexes ? decodeChunkIndex(view, i * unit) : decodeBlockMapEntry(view, i * unit);
      if (addr) addr = { startBlk: addr.startBlk, deviceId: addr.deviceId & this.#deviceIdMask };
      out.push({ index: i, la, len, addr });
    }
    return out;
  }

  readDir(dir: LoadedInode): Dirent[] {
    if ((dir.mode & S_IFMT) !== S_IFDIR) throw new EodError("EROFS_CORRUPTED", `Inode ${dir.nid} is not a directory`);
    this.#checkDataBounds(dir);
    const out: Dirent[] = [];
    let prev: Uint8Array | null = null;
    for (let blk = 0; blk * this.blkSz < dir.size; blk++) {
      const used = Math.min(this.blkSz, dir.size - blk * this.blkSz);
      const block = this.read(dir, blk * this.blkSz, used);
      for (const d of decodeDirBlock(block, used, dir.nid, blk)) {
        if (prev && compareNames(prev, d.name) >= 0) {
          throw new EodError("EROFS_CORRUPTED", `Cannot read directory ${dir.nid}: wrong dirent name order at "${escapeName(d.name)}"`);
        }
        prev = d.name;
        out.push(d);
      }
    }
    return out;
  }

  /**
   * Refuses sizes that cannot fit in the devices (O(1), no I/O), so that reading or walking a corrupted inode
   * can neither run forever nor allocate absurd buffers.
   */
  #checkDataBounds(inode: LoadedInode): void {
    if (inode.dataLayout === EROFS_INODE_CHUNK_BASED) {
      const fmt = decodeChunkFormat(inode.iU, this.sb.blkSzBits, inode.nid);
      const unit = fmt.indexes ? EROFS_CHUNK_INDEX_SIZE : EROFS_BLOCK_MAP_ENTRY_SIZE;
      const end = chunkTablePos(inode, inode.iloc, unit) + Math.ceil(inode.size / 2 ** fmt.chunkBits) * unit;
      if (end > this.#primary.size) throw new EodError("EROFS_CORRUPTED", `Inode ${inode.nid}: chunk table for ${inode.size} bytes runs past the image end`);
    } else if (inode.dataLayout === EROFS_INODE_FLAT_PLAIN || inode.dataLayout === EROFS_INODE_FLAT_INLINE) {
      const full = inode.dataLayout === EROFS_INODE_FLAT_INLINE ? Math.floor((inode.size - 1) / this.blkSz) : Math.ceil(inode.size / this.blkSz);
      if (full > 0 && inode.size > 0) {
        if (inode.iU === EROFS_NULL_ADDR || (inode.iU + full) * this.blkSz > Math.ceil(this.#primary.size / this.blkSz) * this.blkSz) {
          throw new EodError("EROFS_CORRUPTED", `Inode ${inode.nid}: ${full} data blocks at block ${inode.iU} run past the image end`);
        }
      }
    }
  }

  readLink(inode: LoadedInode): Uint8Array {
    if ((inode.mode & S_IFMT) !== S_IFLNK) throw new EodError("EROFS_CORRUPTED", `Inode ${inode.nid} is not a symlink`);
    if (inode.size === 0 || inode.size > 4096) throw new EodError("EROFS_CORRUPTED", `Symlink ${inode.nid} has bogus size ${inode.size}`);
    this.#checkDataBounds(inode);
    return this.read(inode, 0, inode.size);
  }

  /** Resolves a path without following symlinks: names, or a string as escapePath() prints them ("/a/b\\xff"). */
  lookup(path: string | Uint8Array[]): LoadedInode {
    const parts = typeof path === "string" ? parsePath(path) : path;
    let cur = this.root();
    for (let i = 0; i < parts.length; i++) {
      const missing = (why: string) => new EodError("EROFS_CORRUPTED", `No such entry ${escapePath(parts.slice(0, i + 1))}: ${why}`);
      if ((cur.mode & S_IFMT) !== S_IFDIR) throw missing(`${escapePath(parts.slice(0, i))} is not a directory`);
      const hit = this.readDir(cur).find((d) => compareNames(d.name, parts[i]) === 0);
      if (!hit) throw missing(`directory ${escapePath(parts.slice(0, i))} has no "${escapeName(parts[i])}"`);
      cur = this.inode(hit.nid);
    }
    return cur;
  }

  /**
   * Visits every entry depth-first (sorted), root first with an empty path. Checks on the way what the kernel
   * relies on: "." and ".." entries, dirent types that match the inode, and no directory reached twice.
   */
  *walk(): Generator<{ path: Uint8Array[]; inode: LoadedInode; parentNid: number }> {
    const root = this.root();
    const seenDirs = new Set<number>([root.nid]);
    yield { path: [], inode: root, parentNid: root.nid };
    const stack: Array<{ dir: LoadedInode; path: Uint8Array[]; parentNid: number }> = [{ dir: root, path: [], parentNid: root.nid }];
    while (stack.length) {
      const { dir, path, parentNid } = stack.pop()!;
      if (path.length > MAX_DIR_DEPTH) throw new EodError("EROFS_CORRUPTED", `Directory nesting deeper than ${MAX_DIR_DEPTH}`);
      const where = `Directory ${escapePath(path)} (nid ${dir.nid})`;
      let entries: Dirent[];
      try {
        entries = this.readDir(dir);
      } catch (err) {
        throw err instanceof EodError ? new EodError(err.code, `${where}: ${err.message}`, { cause: err }) : err;
      }
      const children: Array<{ dir: LoadedInode; path: Uint8Array[]; parentNid: number }> = [];
      let sawDot = false;
      let sawDotDot = false;
      for (const d of entries) {
        const name = Buffer.from(d.name).toString("latin1");
        if (name === ".") { sawDot = true; if (d.nid !== dir.nid) throw new EodError("EROFS_CORRUPTED", `${where}: "." points to ${d.nid}`); continue; }
        if (name === "..") { sawDotDot = true; if (d.nid !== parentNid) throw new EodError("EROFS_CORRUPTED", `${where}: ".." points to ${d.nid}, expected ${parentNid}`); continue; }
        const child = this.inode(d.nid);
        if (fileTypeOfMode(child.mode) !== d.fileType) {
          throw new EodError("EROFS_CORRUPTED", `${where}: entry "${escapeName(d.name)}" has file type ${d.fileType} but inode ${d.nid} has mode 0${child.mode.toString(8)}`);
        }
        const childPath = [...path, d.name];
        yield { path: childPath, inode: child, parentNid: dir.nid };
        if (d.fileType === EROFS_FT_DIR) {
          if (seenDirs.has(child.nid)) throw new EodError("EROFS_CORRUPTED", `Directory ${escapePath(childPath)} (nid ${child.nid}) is reached twice (a loop or a hard-linked directory)`);
          seenDirs.add(child.nid);
          children.push({ dir: child, path: childPath, parentNid: dir.nid });
        }
      }
      if (!sawDot || !sawDotDot) throw new EodError("EROFS_CORRUPTED", `${where} lacks "." or ".."`);
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
    }
  }
}

/** The superblock byte offset, re-exported for tools that patch images. */
export { EROFS_SUPER_OFFSET };
