// The data order of a build with a prefetch list: the listed files first, in list order, so that the hot
// chunks sit together in the blob and a mount fetches them in a few large requests; then everything else in
// placement order. Paths are looked up in the scanned tree (symlinks followed; a directory brings every file
// under it, names in byte order); entries not in the tree are reported, not fatal (a trace may come from
// another build). The order is the one the mount's prefetch plan takes (src/daemon/prefetch.ts).
import type { ChunkAddr } from "../erofs/chunk.ts";
import { S_IFDIR, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import { mergeRanges, resolvePath, type PrefetchEntry } from "../image/prefetch.ts";
import type { TreeInode } from "./tree.ts";

export interface PrefetchFile {
  inode: TreeInode;
  /** The byte ranges wanted, merged; absent: the whole file. */
  ranges?: Array<[number, number]>;
}

/** The listed files in list order, each with the ranges of its first mention; and the entries not in the tree. */
export function prefetchFiles(root: TreeInode, entries: readonly PrefetchEntry[]): { files: PrefetchFile[]; skipped: string[] } {
  const files: PrefetchFile[] = [];
  const seen = new Set<TreeInode>();
  const skipped: string[] = [];
  const add = (i: TreeInode, ranges: PrefetchFile["ranges"]): void => {
    if ((i.mode & S_IFMT) === S_IFREG) {
      if (seen.has(i)) return;
      seen.add(i);
      files.push(ranges ? { inode: i, ranges } : { inode: i });
    } else if ((i.mode & S_IFMT) === S_IFDIR) for (const c of i.children ?? []) add(c.inode, undefined);
  };
  for (const e of entries) {
    const found = resolvePath(root, e.path, {
      child: (dir, name) => dir.children?.find((c) => c.name.toString() === name)?.inode,
      linkTarget: (node) => (node.target ? node.target.toString() : null),
    });
    if (found && ((found.mode & S_IFMT) === S_IFREG || (found.mode & S_IFMT) === S_IFDIR)) add(found, e.ranges ? mergeRanges(e.ranges) : undefined);
    else skipped.push(e.path);
  }
  return { files, skipped };
}

export function prefetchFirst(root: TreeInode, entries: readonly PrefetchEntry[]): { hot: TreeInode[]; skipped: string[] } {
  const { files, skipped } = prefetchFiles(root, entries);
  return { hot: files.map((f) => f.inode), skipped };
}

/**
 * The chunk addresses the mount's prefetch asks for, in its order: each listed file's chunks that hold a
 * wanted byte, in file order (holes and repeats left out).
 */
export function prefetchChunks(files: readonly PrefetchFile[], chunkSize: number, addrsOf: (i: TreeInode) => ReadonlyArray<ChunkAddr | null> | undefined): ChunkAddr[] {
  const out: ChunkAddr[] = [];
  const seen = new Set<ChunkAddr>();
  for (const { inode, ranges } of files) {
    (addrsOf(inode) ?? []).forEach((a, k) => {
      if (!a || seen.has(a)) return;
      const from = k * chunkSize;
      if (ranges && !ranges.some(([o, l]) => o < from + chunkSize && from < o + l)) return;
      seen.add(a);
      out.push(a);
    });
  }
  return out;
}
