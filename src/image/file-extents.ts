// Where each regular file's bytes lie in each device's kernel form, read from a bootstrap: the cache core's miss
// planner fetches a small file whole with it where the chunk table cannot show files (a layer's seek index:
// its pieces are cut by size, and a tar's files lie anywhere in them). Pure over an ErofsReader.
import { EROFS_FT_DIR, EROFS_FT_REG_FILE } from "../erofs/constants.ts";
import type { ErofsReader } from "../erofs/reader.ts";

/** The byte ranges [start, end) of files in one device's kernel form, sorted by start (overlaps possible: hard links). */
export interface FileExtents {
  starts: Float64Array;
  ends: Float64Array;
}

/** Directories read between two turns of the event loop: a tree of 100,000 files takes ~0.5 s to walk. */
const DIRS_PER_TURN = 64;

/**
 * The extents of the regular files of the tree per device (index 0 = device 1): one per file when its chunks
 * lie back to back on one device, else one per run of them. Gives the event loop a turn every few directories.
 */
export async function fileExtentsOf(reader: ErofsReader, devices: number): Promise<FileExtents[]> {
  const ranges: Array<Array<[number, number]>> = Array.from({ length: devices }, () => []);
  const seen = new Set<number>();
  const dirs = [reader.root()];
  let read = 0;
  for (let dir = dirs.pop(); dir; dir = dirs.pop()) {
    if (++read % DIRS_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const d of reader.readDir(dir)) {
      if (d.nid === dir.nid || seen.has(d.nid) || (d.fileType !== EROFS_FT_DIR && d.fileType !== EROFS_FT_REG_FILE)) continue;
      seen.add(d.nid);
      const inode = reader.inode(d.nid);
      if (d.fileType === EROFS_FT_DIR) {
        dirs.push(inode);
        continue;
      }
      let run: [number, number] | null = null;
      let device = 0;
      for (const c of reader.chunks(inode)) {
        if (!c.addr || c.addr.deviceId < 1 || c.addr.deviceId > devices) { run = null; continue; }
        const start = c.addr.startBlk * reader.blkSz;
        if (run && device === c.addr.deviceId && run[1] === start) run[1] = start + c.len;
        else {
          device = c.addr.deviceId;
          run = [start, start + c.len];
          ranges[device - 1].push(run);
        }
      }
    }
  }
  return ranges.map((list) => {
    list.sort((a, b) => a[0] - b[0]);
    return { starts: Float64Array.from(list, (r) => r[0]), ends: Float64Array.from(list, (r) => r[1]) };
  });
}

/** The extent holding byte `at`, or null (the last one starting at or before it, if it reaches past it). */
export function extentAt(x: FileExtents, at: number): [number, number] | null {
  let lo = 0;
  let hi = x.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x.starts[mid] <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && x.ends[lo - 1] > at ? [x.starts[lo - 1], x.ends[lo - 1]] : null;
}
