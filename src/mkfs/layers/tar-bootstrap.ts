// The bootstrap of an ordinary image's layers (issue 14): EROFS metadata with 512-byte blocks whose regular files
// point at their bodies inside the layers' uncompressed tars, as `mkfs.erofs --tar=i` makes. Layer k's tar is an
// extra device; a tar body starts on a 512-byte boundary and is contiguous, so a file is one chunk (few indexes)
// at block `body offset / 512`. The layers merge with the overlay rules of every build from layers (merge.ts).
// No file is inlined: a file's bytes stay in its tar, so the bootstrap is metadata only and every byte a mount
// reads is checked against the layer's seek index.
import { EodError } from "../../errors.ts";
import { S_IFMT, S_IFREG } from "../../erofs/constants.ts";
import { EROFS_CHUNK_FORMAT_BLKBITS_MASK, EROFS_NULL_ADDR } from "../../erofs/constants.ts";
import type { ChunkAddr } from "../../erofs/chunk.ts";
import { LAYER_BLK_SZ_BITS } from "../../image/layer-spans.ts";
import { chooseEpoch, planLayout, type FileShape, type Layout } from "../layout.ts";
import type { ScanResult, TreeInode } from "../tree.ts";
import { MergedTree } from "./merge.ts";
import type { TarEntry } from "./tar-reader.ts";

/** The seek indexes' block: a tar's 512-byte records. */
export const TAR_BLK_SZ_BITS = LAYER_BLK_SZ_BITS;
const TAR_BLK_SZ = 1 << TAR_BLK_SZ_BITS;
/** One chunk covers a file up to 2^40 bytes (chunkbits = blkszbits + the format's 5 bits). */
const MAX_CHUNK_BITS = TAR_BLK_SZ_BITS + EROFS_CHUNK_FORMAT_BLKBITS_MASK;

/** Where a file's body is: its layer (0 = the lowest) and its first 512-byte block in that layer's tar. */
interface Body {
  layer: number;
  startBlk: number;
  chunkBits: number;
}

/** What writeImageHead needs, for a bootstrap whose device k + 1 is `deviceOfLayer`'s answer. */
export interface TarBootstrapPlan {
  scan: ScanResult;
  layout: Layout;
  chunkAddrs(inode: TreeInode): ReadonlyArray<ChunkAddr | null>;
  inlineData(inode: TreeInode): Uint8Array;
  /** The largest chunk of any file (a power of two, at least one block). */
  chunkSize: number;
}

/** The smallest chunk size (log2) that holds `size` bytes in one chunk, or the largest the format has. */
export function chunkBitsFor(size: number): number {
  let bits = TAR_BLK_SZ_BITS;
  while (bits < MAX_CHUNK_BITS && 2 ** bits < size) bits++;
  return bits;
}

export class TarBootstrap {
  readonly #tree = new MergedTree();
  readonly #bodies = new Map<TreeInode, Body>();
  #layer = 0;

  /** Warnings of the merge (xattrs EROFS cannot name), to show the user. */
  get warnings(): string[] {
    return this.#tree.warnings;
  }

  /** Entries that follow belong to layer `index` (0 = the lowest). */
  beginLayer(index: number): void {
    this.#layer = index;
    this.#tree.beginLayer(index);
  }

  /** Applies one entry of the current layer; a regular file's data stays where the entry's body is in the tar. */
  add(entry: TarEntry, where: string): void {
    const { inode } = this.#tree.apply(entry, where);
    if (!inode || entry.type !== "file" || entry.size === 0) return;
    if (entry.dataOffset % TAR_BLK_SZ) throw new Error(`internal: ${where}: body at byte ${entry.dataOffset} of the tar`);
    const startBlk = entry.dataOffset / TAR_BLK_SZ;
    const chunkBits = chunkBitsFor(entry.size);
    const lastBlk = startBlk + Math.ceil(entry.size / TAR_BLK_SZ) - 1;
    if (lastBlk >= EROFS_NULL_ADDR) {
      throw new EodError("SOURCE_UNSUPPORTED", `${where}: its body ends past 2 TiB of the layer's tar, beyond EROFS's 32-bit block addresses: the image needs conversion (eod convert)`);
    }
    this.#bodies.set(inode, { layer: this.#layer, startBlk, chunkBits });
  }

  /**
   * The merged tree laid out with 512-byte blocks; `deviceOfLayer(k)` is the device (1-based) holding layer k's
   * tar (layers with the same tar share one). Call once, after the last layer.
   */
  finish(devices: number, deviceOfLayer: (layer: number) => number): TarBootstrapPlan {
    const scan = this.#tree.finish();
    const shapeOf = (i: TreeInode): FileShape => {
      const b = this.#bodies.get(i);
      if (!b) return { kind: "empty" };
      return { kind: "chunks", chunkBits: b.chunkBits, indexes: true, count: Math.ceil(i.size / 2 ** b.chunkBits) };
    };
    const layout = planLayout(scan, { blkSzBits: TAR_BLK_SZ_BITS, extraDevices: devices, shapeOf }, chooseEpoch(scan.inodes));
    let chunkSize = TAR_BLK_SZ;
    for (const i of scan.inodes) {
      const b = (i.mode & S_IFMT) === S_IFREG ? this.#bodies.get(i) : undefined;
      if (b) chunkSize = Math.max(chunkSize, 2 ** b.chunkBits);
    }
    return {
      scan, layout, chunkSize,
      chunkAddrs: (i) => {
        const b = this.#bodies.get(i)!;
        const perChunk = 2 ** (b.chunkBits - TAR_BLK_SZ_BITS);
        const deviceId = deviceOfLayer(b.layer);
        // A body is contiguous: chunk k starts k chunks after the first (more than one only past 1 TiB).
        return Array.from({ length: Math.ceil(i.size / 2 ** b.chunkBits) }, (_, k) => ({ deviceId, startBlk: b.startBlk + k * perChunk }));
      },
      inlineData: () => {
        throw new Error("internal: nothing of a tar bootstrap is inline");
      },
    };
  }
}
