// The image's prefetch list, turned into chunks through the bootstrap and fetched right after the mount, in
// priority order, through the cache core's prefetch lane (a few requests at a time, so demand misses always
// find the remote free). Paths that are not in the image, or not regular files, are skipped and counted.
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import type { ErofsReader, LoadedInode } from "../erofs/reader.ts";
import type { ChunkTable } from "../image/chunk-table.ts";
import { mergeRanges, resolvePath, type PrefetchEntry } from "../image/prefetch.ts";
import { chunksOverlapping } from "../cache/plan.ts";

export interface PrefetchPlan {
  /** Chunk-table indexes per blob (device k + 1 is blobs[k]), in priority order, each once. */
  chunks: number[][];
  files: number;
  skipped: string[];
}

/** Maps prefetch entries to the chunks of the image's blobs that hold their bytes. */
export function planPrefetch(reader: ErofsReader, tables: readonly ChunkTable[], entries: readonly PrefetchEntry[]): PrefetchPlan {
  const plan: PrefetchPlan = { chunks: tables.map(() => []), files: 0, skipped: [] };
  const seen = tables.map(() => new Set<number>());
  const dirs = new Map<number, Map<string, number>>();
  const addFile = (inode: LoadedInode, ranges: ReadonlyArray<[number, number]> | undefined) => {
    plan.files++;
    const wanted = ranges ? mergeRanges(ranges) : null;
    for (const c of reader.chunks(inode)) {
      if (!c.addr || c.addr.deviceId < 1 || c.addr.deviceId > tables.length) continue; // a hole, or data in the bootstrap
      if (wanted && !wanted.some(([o, l]) => o < c.la + c.len && c.la < o + l)) continue;
      const k = c.addr.deviceId - 1;
      const r = chunksOverlapping(tables[k].entries, c.addr.startBlk * reader.blkSz, c.len);
      for (let i = r?.[0] ?? 0; r && i <= r[1]; i++) {
        if (seen[k].has(i)) continue;
        seen[k].add(i);
        plan.chunks[k].push(i);
      }
    }
  };
  const addTree = (inode: LoadedInode, ranges: ReadonlyArray<[number, number]> | undefined) => {
    const type = inode.mode & S_IFMT;
    if (type === S_IFREG) return addFile(inode, ranges);
    if (type !== S_IFDIR) return;
    for (const [name, nid] of entriesOf(reader, inode, dirs)) if (name !== "." && name !== "..") addTree(reader.inode(nid), undefined);
  };
  for (const e of entries) {
    const inode = resolve(reader, e.path, dirs);
    if (!inode || ((inode.mode & S_IFMT) !== S_IFREG && (inode.mode & S_IFMT) !== S_IFDIR)) { plan.skipped.push(e.path); continue; }
    addTree(inode, e.ranges);
  }
  return plan;
}

function resolve(reader: ErofsReader, path: string, dirs: Map<number, Map<string, number>>): LoadedInode | null {
  return resolvePath(reader.root(), path, {
    child: (dir, name) => {
      if ((dir.mode & S_IFMT) !== S_IFDIR) return undefined;
      const nid = entriesOf(reader, dir, dirs).get(name);
      return nid === undefined ? undefined : reader.inode(nid);
    },
    linkTarget: (node) => ((node.mode & S_IFMT) === S_IFLNK ? Buffer.from(reader.readLink(node)).toString() : null),
  });
}

function entriesOf(reader: ErofsReader, dir: LoadedInode, cache: Map<number, Map<string, number>>): Map<string, number> {
  let m = cache.get(dir.nid);
  if (!m) {
    m = new Map(reader.readDir(dir).map((d) => [Buffer.from(d.name).toString(), d.nid]));
    cache.set(dir.nid, m);
  }
  return m;
}
