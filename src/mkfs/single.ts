// `eod build --single`: one self-contained EROFS image with all file data in the primary device, a drop-in
// for `mkfs.erofs <file> <dir>`. Files with chunk-sized holes become chunk-based (4-byte block map) so
// that a sparse file stays sparse; everything else is FLAT_PLAIN/FLAT_INLINE.
import fs from "node:fs";
import { EROFS_FEATURE_INCOMPAT_CHUNKED_FILE, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import type { ChunkAddr } from "../erofs/chunk.ts";
import { chooseEpoch, planLayout, type FileShape, type Layout } from "./layout.ts";
import { writeMetadata } from "./metadata.ts";
import { isZero, overlapsData, SourceFile } from "./source-file.ts";
import { scanTree, type TreeInode } from "./tree.ts";
import { checkOutputFile, commitFile, type BuildProgress } from "./output.ts";

export interface SingleOptions {
  blkSzBits?: number;
  /** Granularity at which holes of sparse files are kept (a power of two ≥ the block size). */
  chunkSize?: number;
  progress?: BuildProgress;
}

export interface SingleSummary {
  image: string;
  size: number;
  blocks: number;
  inodes: number;
  warnings: string[];
}

const COPY_UNIT = 1 << 20;

export async function buildSingle(src: string, outFile: string, opts: SingleOptions = {}): Promise<SingleSummary> {
  const blkSzBits = opts.blkSzBits ?? 12;
  const blkSz = 2 ** blkSzBits;
  const chunkSize = opts.chunkSize ?? 1 << 20;
  const chunkBits = Math.log2(chunkSize);
  checkOutputFile(outFile); // before the scan: a wrong output is reported at once, not after minutes
  const scan = scanTree(src, { onProgress: (n) => opts.progress?.("scan", n, 0), exclude: [outFile] });
  const epoch = chooseEpoch(scan.inodes);
  const holes = new Map<TreeInode, Array<{ offset: number; length: number }>>();
  for (const i of scan.inodes) {
    if ((i.mode & S_IFMT) !== S_IFREG || !i.sparse || i.size < chunkSize) continue;
    const f = SourceFile.open(i.sourcePath, i.size);
    try {
      const ranges = f.dataRanges();
      if (hasHoleChunk(ranges, i.size, chunkSize)) holes.set(i, ranges);
    } finally {
      f.close();
    }
  }
  const shapeOf = (i: TreeInode): FileShape =>
    i.size === 0 ? { kind: "empty" } : holes.has(i) ? { kind: "chunks", chunkBits, indexes: false, count: Math.ceil(i.size / chunkSize) } : { kind: "flat" };
  const layout = planLayout(scan, { blkSzBits, extraDevices: 0, shapeOf }, epoch);

  return commitFile(outFile, async (fd) => {
    const tails = new Map<TreeInode, Uint8Array>();
    const chunkAddrs = new Map<TreeInode, Array<ChunkAddr | null>>();
    let nextBlk = layout.blocks;
    const buf = Buffer.allocUnsafe(COPY_UNIT);
    let done = 0;
    const total = layout.placed.reduce((n, p) => n + ((p.inode.mode & S_IFMT) === S_IFREG ? p.inode.size : 0), 0);
    for (const p of layout.placed) {
      const i = p.inode;
      if ((i.mode & S_IFMT) !== S_IFREG || i.size === 0) continue;
      const f = SourceFile.open(i.sourcePath, i.size);
      try {
        const ranges = holes.get(i);
        if (ranges) {
          const addrs: Array<ChunkAddr | null> = [];
          for (let off = 0; off < i.size; off += chunkSize) {
            const len = Math.min(chunkSize, i.size - off);
            const chunk = buf.subarray(0, len);
            if (!overlapsData(ranges, off, off + len)) { addrs.push(null); continue; }
            f.readExact(chunk, off);
            if (isZero(chunk)) { addrs.push(null); continue; }
            fs.writeSync(fd, chunk, 0, len, nextBlk * blkSz);
            addrs.push({ startBlk: nextBlk, deviceId: 0 });
            nextBlk += Math.ceil(len / blkSz);
          }
          chunkAddrs.set(i, addrs);
        } else {
          const flatLen = i.size - p.inlineLen;
          for (let off = 0; off < flatLen; off += COPY_UNIT) {
            const piece = buf.subarray(0, Math.min(COPY_UNIT, flatLen - off));
            f.readExact(piece, off);
            fs.writeSync(fd, piece, 0, piece.length, p.startBlk * blkSz + off);
          }
          if (p.inlineLen) {
            const tail = new Uint8Array(p.inlineLen);
            f.readExact(tail, flatLen);
            tails.set(i, tail);
          }
        }
      } finally {
        f.close();
      }
      done += i.size;
      opts.progress?.("data", done, total);
    }
    const meta = writeMetadata({
      scan, layout: layout as Layout, blkSzBits, devices: [],
      featureIncompat: chunkAddrs.size ? EROFS_FEATURE_INCOMPAT_CHUNKED_FILE : 0,
      chunkAddrs: (i) => chunkAddrs.get(i)!,
      inlineData: (i) => tails.get(i)!,
      totalBlocks: nextBlk,
    });
    fs.writeSync(fd, meta, 0, meta.length, 0);
    fs.ftruncateSync(fd, nextBlk * blkSz);
    return { image: outFile, size: nextBlk * blkSz, blocks: nextBlk, inodes: layout.placed.length, warnings: scan.warnings };
  });
}

function hasHoleChunk(ranges: ReadonlyArray<{ offset: number; length: number }>, size: number, chunkSize: number): boolean {
  for (let off = 0; off < size; off += chunkSize) {
    if (!overlapsData(ranges, off, Math.min(size, off + chunkSize))) return true;
  }
  return false;
}
