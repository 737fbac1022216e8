// The merged tree of a layered image, with overlay semantics (OCI image spec, layer.md): an entry adds or
// replaces a path; a directory entry over an existing directory updates its attributes and keeps its
// children; `.wh.<name>` hides <name> of lower layers; `.wh..wh..opq` hides every lower-layer child of its
// directory. Each node remembers the layer that last wrote it, so whiteouts never hide what the same layer
// wrote (the spec's rule, whatever the order of entries in the tar). The result has the same shape as a
// scanned directory (tree.ts), so layout and metadata work unchanged.
import { EodError } from "../../errors.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from "../../erofs/constants.ts";
import { compareNames } from "../../erofs/dirent.ts";
import { MAX_XATTR_AREA, splitXattrName, xattrAreaSize, type Xattr } from "../../erofs/xattr.ts";
import type { ScanResult, TreeDirent, TreeInode } from "../tree.ts";
import type { TarEntry } from "./tar-reader.ts";

interface Node {
  inode: TreeInode;
  /** Index of the layer that last wrote this path (-1: the implicit root). */
  layer: number;
  /** Directories: children by name (latin1 of the bytes, lossless). */
  children?: Map<string, Node>;
}

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";
const NAME_MAX = 255;
const WH = Buffer.from(WHITEOUT_PREFIX);
const OPQ = Buffer.from(OPAQUE_MARKER);
const WH_META = Buffer.from(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`);

/**
 * An entry path as components. A leading "/" is dropped and "." and empty components are skipped (as GNU
 * tar and containerd do: "/etc/x" is "etc/x" of the image); a ".." component is refused, so no entry can
 * name anything outside the tree.
 */
export function splitPath(raw: Buffer, where: string): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x2f) continue;
    const c = raw.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === 0x2e)) continue;
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) {
      throw new EodError("SOURCE_INVALID", `${where}: path ${JSON.stringify(raw.toString())} contains "..": refused (entries may not leave the image root)`);
    }
    if (c.length > NAME_MAX) throw new EodError("SOURCE_UNSUPPORTED", `${where}: a name in ${JSON.stringify(raw.toString())} is longer than ${NAME_MAX} bytes`);
    out.push(Buffer.from(c));
  }
  return out;
}

export class MergedTree {
  readonly #root: Node;
  readonly warnings: string[] = [];
  #layer = 0;

  constructor() {
    this.#root = { inode: implicitDir(Buffer.from("/")), layer: -1, children: new Map() };
  }

  /** Entries that follow belong to layer `index` (0 = the lowest). */
  beginLayer(index: number): void {
    this.#layer = index;
  }

  /**
   * Applies one tar entry of the current layer (every builder from layers goes through here, so they all
   * merge alike): `.wh.` markers remove, a hard link adds a name, anything else is put. Returns the entry's
   * path and the inode it put (null for markers and hard links).
   */
  apply(entry: TarEntry, where: string): { comps: Buffer[]; inode: TreeInode | null } {
    const comps = splitPath(entry.path, where);
    const base = comps[comps.length - 1];
    if (base && base.subarray(0, WH.length).equals(WH)) {
      const dir = comps.slice(0, -1);
      if (base.equals(OPQ)) this.opaque(dir);
      else if (!base.subarray(0, WH_META.length).equals(WH_META)) this.whiteout(dir, base.subarray(WH.length));
      return { comps, inode: null }; // other .wh..wh.* names are aufs bookkeeping, never part of the tree
    }
    if (entry.type === "link") {
      this.link(comps, splitPath(entry.linkpath, `${where} (link target)`), where);
      return { comps, inode: null };
    }
    const inode = inodeOf(entry, where, this.warnings);
    this.put(comps, inode, where);
    return { comps, inode };
  }

  /** Adds or replaces the path `comps` (missing parents are created as 0755 root:root directories, mtime 0). */
  put(comps: Buffer[], inode: TreeInode, where: string): void {
    if (comps.length === 0) {
      if ((inode.mode & S_IFMT) !== S_IFDIR) throw new EodError("SOURCE_INVALID", `${where}: the root can only be a directory`);
      updateDir(this.#root, inode, this.#layer);
      return;
    }
    const parent = this.#parentOf(comps, where, true)!;
    const name = key(comps[comps.length - 1]);
    const old = parent.children!.get(name);
    if (old?.children && (inode.mode & S_IFMT) === S_IFDIR) {
      updateDir(old, inode, this.#layer);
      return;
    }
    parent.children!.set(name, {
      inode, layer: this.#layer, children: (inode.mode & S_IFMT) === S_IFDIR ? new Map() : undefined,
    });
  }

  /** A hard link: `comps` becomes another name of the non-directory at `target` (this or a lower layer). */
  link(comps: Buffer[], target: Buffer[], where: string): void {
    const t = this.#lookup(target);
    if (!t) throw new EodError("SOURCE_INVALID", `${where}: hard link target ${JSON.stringify(join(target))} does not exist (entries before it in this layer or lower layers)`);
    if (t.children) throw new EodError("SOURCE_INVALID", `${where}: hard link target ${JSON.stringify(join(target))} is a directory`);
    if (comps.length === 0) throw new EodError("SOURCE_INVALID", `${where}: the root cannot be a hard link`);
    const parent = this.#parentOf(comps, where, true)!;
    parent.children!.set(key(comps[comps.length - 1]), { inode: t.inode, layer: this.#layer });
  }

  /** `.wh.<name>` in directory `dir`: hides <name> if a lower layer wrote it. */
  whiteout(dir: Buffer[], name: Buffer): void {
    const d = this.#lookup(dir);
    const k = key(name);
    const victim = d?.children?.get(k);
    if (victim && victim.layer < this.#layer) d!.children!.delete(k);
  }

  /** `.wh..wh..opq` in directory `dir`: hides every child a lower layer wrote. */
  opaque(dir: Buffer[]): void {
    const d = this.#lookup(dir);
    if (!d?.children) return;
    for (const [k, c] of d.children) if (c.layer < this.#layer) d.children.delete(k);
  }

  /** The tree in scanTree()'s shape: children sorted by name, nlink counted, every reachable inode once. */
  finish(): ScanResult {
    const inodes: TreeInode[] = [];
    const links = new Map<TreeInode, number>();
    const stack: Node[] = [this.#root];
    inodes.push(this.#root.inode);
    while (stack.length) {
      const dir = stack.pop()!;
      const children: TreeDirent[] = [];
      let subdirs = 0;
      for (const [k, c] of dir.children!) {
        children.push({ name: Buffer.from(k, "latin1"), inode: c.inode });
        if (c.children) {
          subdirs++;
          inodes.push(c.inode);
          stack.push(c);
        } else {
          const n = links.get(c.inode);
          if (n === undefined) inodes.push(c.inode);
          links.set(c.inode, (n ?? 0) + 1);
        }
      }
      children.sort((a, b) => compareNames(a.name, b.name));
      dir.inode.children = children;
      dir.inode.nlink = 2 + subdirs;
    }
    for (const [inode, n] of links) inode.nlink = n;
    return { root: this.#root.inode, inodes, warnings: this.warnings };
  }

  /** The directory holding `comps`' last component; creates missing parents when `create`. */
  #parentOf(comps: Buffer[], where: string, create: boolean): Node | null {
    let d = this.#root;
    for (let i = 0; i < comps.length - 1; i++) {
      const k = key(comps[i]);
      let c = d.children!.get(k);
      if (!c) {
        if (!create) return null;
        c = { inode: implicitDir(comps.slice(0, i + 1)), layer: this.#layer, children: new Map() };
        d.children!.set(k, c);
      } else if (!c.children) {
        const why = (c.inode.mode & S_IFMT) === S_IFLNK ? "is a symlink (writing through a symlink is refused)" : "is not a directory";
        throw new EodError("SOURCE_INVALID", `${where}: ${JSON.stringify(join(comps.slice(0, i + 1)))} ${why}`);
      }
      d = c;
    }
    return d;
  }

  /** The node at `comps` without following symlinks, or null. */
  #lookup(comps: Buffer[]): Node | null {
    let d: Node | undefined = this.#root;
    for (const c of comps) {
      d = d.children?.get(key(c));
      if (!d) return null;
    }
    return d;
  }
}

/** The inode of a tar entry (not for hard links); xattrs EROFS cannot name are dropped with a warning. */
export function inodeOf(e: TarEntry, where: string, warnings: string[]): TreeInode {
  const type = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, chardev: S_IFCHR, blockdev: S_IFBLK, fifo: S_IFIFO, link: 0 }[e.type];
  if (!type) throw new Error(`internal: inodeOf(${e.type})`);
  if (e.uid > 0xffffffff || e.gid > 0xffffffff) throw new EodError("SOURCE_UNSUPPORTED", `${where}: uid/gid ${e.uid}/${e.gid} exceeds 32 bits`);
  if (e.devMajor > 0xfff || e.devMinor > 0xfffff) {
    throw new EodError("SOURCE_UNSUPPORTED", `${where}: device ${e.devMajor}:${e.devMinor} exceeds 12-bit major / 20-bit minor`);
  }
  const xattrs: Xattr[] = [];
  for (const x of e.xattrs) {
    const split = splitXattrName(x.name);
    if (!split || split.suffix.length > 255) {
      warnings.push(`Skipped xattr ${JSON.stringify(x.name)} of ${where}: EROFS cannot store this name`);
      continue;
    }
    if (x.value.length > 0xffff) throw new EodError("SOURCE_UNSUPPORTED", `${where}: xattr ${x.name} is ${x.value.length} bytes (EROFS limit 65535)`);
    xattrs.push(x);
  }
  const area = xattrAreaSize(xattrs);
  if (area > MAX_XATTR_AREA) throw new EodError("SOURCE_UNSUPPORTED", `${where}: xattrs take ${area} bytes in EROFS form, over its limit of ${MAX_XATTR_AREA} per inode`);
  if (type === S_IFLNK && e.linkpath.length === 0) throw new EodError("SOURCE_INVALID", `${where}: symlink without a target`);
  return {
    // Linux symlinks are always 0777 whatever the header says (extraction with symlink(2) gives that too).
    mode: type | (type === S_IFLNK ? 0o777 : e.mode), uid: e.uid, gid: e.gid,
    size: type === S_IFREG ? e.size : type === S_IFLNK ? e.linkpath.length : 0,
    mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, rdevMajor: e.devMajor, rdevMinor: e.devMinor, xattrs,
    sourcePath: Buffer.from(where), nlink: 1, sparse: false,
    target: type === S_IFLNK ? e.linkpath : undefined,
  };
}

function implicitDir(comps: Buffer[] | Buffer): TreeInode {
  const p = Array.isArray(comps) ? join(comps) : comps.toString();
  return {
    mode: S_IFDIR | 0o755, uid: 0, gid: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, rdevMajor: 0, rdevMinor: 0,
    xattrs: [], sourcePath: Buffer.from(`(implicit directory) ${p}`), nlink: 2, sparse: false,
  };
}

/** A directory entry over an existing directory: new attributes, same children. */
function updateDir(node: Node, inode: TreeInode, layer: number): void {
  const d = node.inode;
  d.mode = inode.mode; d.uid = inode.uid; d.gid = inode.gid;
  d.mtimeSec = inode.mtimeSec; d.mtimeNsec = inode.mtimeNsec;
  d.xattrs = inode.xattrs; d.sourcePath = inode.sourcePath;
  node.layer = layer;
}

function key(name: Buffer): string {
  return name.toString("latin1");
}

function join(comps: Buffer[]): string {
  return Buffer.concat(comps.flatMap((c, i) => (i ? [Buffer.from("/"), c] : [c]))).toString();
}
