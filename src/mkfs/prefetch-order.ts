// The data order of a build with a prefetch list: the listed files first, in list order, so that the hot
// chunks sit together in the blob and a mount fetches them in a few large requests; then everything else in
// placement order. Paths are looked up in the scanned tree (symlinks followed; a directory brings every file
// under it); entries not in the tree are reported, not fatal (a trace may come from another build).
import { S_IFDIR, S_IFMT, S_IFREG } from "../erofs/constants.ts";
import { resolvePath, type PrefetchEntry } from "../image/prefetch.ts";
import type { TreeInode } from "./tree.ts";

export function prefetchFirst(root: TreeInode, entries: readonly PrefetchEntry[]): { hot: TreeInode[]; skipped: string[] } {
  const hot = new Set<TreeInode>();
  const skipped: string[] = [];
  const add = (i: TreeInode): void => {
    if ((i.mode & S_IFMT) === S_IFREG) hot.add(i);
    else if ((i.mode & S_IFMT) === S_IFDIR) for (const c of i.children ?? []) add(c.inode);
  };
  for (const e of entries) {
    const found = resolvePath(root, e.path, {
      child: (dir, name) => dir.children?.find((c) => c.name.toString() === name)?.inode,
      linkTarget: (node) => (node.target ? node.target.toString() : null),
    });
    if (found && ((found.mode & S_IFMT) === S_IFREG || (found.mode & S_IFMT) === S_IFDIR)) add(found);
    else skipped.push(e.path);
  }
  return { hot: [...hot], skipped };
}
