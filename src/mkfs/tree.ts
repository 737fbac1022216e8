// Source directory -> in-memory tree of inodes and names. This is the only place that looks at the build
// input's metadata; data is read later, file by file, by the chunker or the flat writer.
import { isUtf8 } from "node:buffer";
import fs from "node:fs";
import path from "node:path";
import { EodError, SysError } from "../errors.ts";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from "../erofs/constants.ts";
import { MAX_XATTR_AREA, splitXattrName, xattrAreaSize, type Xattr } from "../erofs/xattr.ts";
import { getXattr, listXattrNameBytes } from "../sys/xattr.ts";
import { compareNames } from "../erofs/dirent.ts";
import { escapeName } from "../erofs/printable-name.ts";
import { withShortPath } from "./long-path.ts";

export interface TreeInode {
  /** Full st_mode. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeSec: number;
  /** 0..999999999, also for times before 1970. */
  mtimeNsec: number;
  /** For character and block devices. */
  rdevMajor: number;
  rdevMinor: number;
  /** Storable xattrs, sorted by name. */
  xattrs: Xattr[];
  /** Where the bytes come from (absolute, as a Buffer so any name works). */
  sourcePath: Buffer;
  /** Names pointing here inside the tree (files), or 2 + subdirectories (directories). */
  nlink: number;
  /** Directories: entries sorted by name bytes (without "." and ".."). */
  children?: TreeDirent[];
  /** Symlinks: the target bytes. */
  target?: Buffer;
  /** st_blocks * 512 < size: the file may have holes worth skipping. */
  sparse: boolean;
}

export interface TreeDirent {
  name: Buffer;
  inode: TreeInode;
}

export interface ScanResult {
  root: TreeInode;
  /** Every inode once (hard links counted once), in the order first met. */
  inodes: TreeInode[];
  /** Things skipped with a reason (unstorable xattrs). */
  warnings: string[];
}

export interface ScanOptions {
  /** Called every few hundred entries so a CLI can show progress. */
  onProgress?: (entries: number) => void;
  /** Paths left out if they are inside the tree (the build's own output, when it lies in the source). */
  exclude?: string[];
}

/** Reads the metadata of the whole tree under `root` (not following symlinks). */
export function scanTree(root: string, opts: ScanOptions = {}): ScanResult {
  const rootPath = Buffer.from(realRoot(root));
  const warnings: string[] = [];
  const inodes: TreeInode[] = [];
  const links = new Map<string, TreeInode>();
  let entries = 0;

  const rootStat = lstat(rootPath);
  if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) {
    throw new EodError("SOURCE_UNSUPPORTED", `Cannot build from ${rootPath}: not a directory`);
  }
  const excluded = new Set<string>();
  for (const e of opts.exclude ?? []) {
    try {
      const st = fs.lstatSync(e, { bigint: true });
      excluded.add(`${st.dev}:${st.ino}`);
    } catch { /* does not exist yet: nothing to leave out */ }
  }
  const rootInode = makeInode(rootPath, rootStat, warnings);
  inodes.push(rootInode);
  const stack: Array<{ dir: TreeInode; dev: bigint }> = [{ dir: rootInode, dev: rootStat.dev }];
  while (stack.length) {
    const { dir, dev } = stack.pop()!;
    const names = readdir(dir.sourcePath);
    const children: TreeDirent[] = [];
    for (const name of names) {
      const p = Buffer.concat([dir.sourcePath, SLASH, name]);
      const st = lstat(p);
      if (excluded.has(`${st.dev}:${st.ino}`)) {
        warnings.push(`Left out ${p}: it is the build's output`);
        continue;
      }
      const mode = Number(st.mode);
      let inode: TreeInode | undefined;
      const key = (mode & S_IFMT) !== S_IFDIR && st.nlink > 1n ? `${st.dev}:${st.ino}` : null;
      if (key) inode = links.get(key);
      if (inode) {
        inode.nlink++;
      } else {
        inode = makeInode(p, st, warnings);
        inodes.push(inode);
        if (key) links.set(key, inode);
        if ((mode & S_IFMT) === S_IFDIR) {
          dir.nlink++;
          // A mount point of /proc, /sys & co. (a chroot's): its files are the running kernel's state, not
          // data, and reading them fails or never ends (/proc/kcore). Keep the directory, empty.
          const pseudo = st.dev !== dev ? pseudoFsName(p) : undefined;
          if (pseudo) {
            inode.children = [];
            warnings.push(`Left out the content of ${p}: a ${pseudo} mount (kernel state, not files)`);
          } else {
            stack.push({ dir: inode, dev: st.dev });
          }
        }
      }
      children.push({ name, inode });
      if (++entries % 512 === 0) opts.onProgress?.(entries);
    }
    children.sort((a, b) => compareNames(a.name, b.name));
    dir.children = children;
  }
  opts.onProgress?.(entries);
  return { root: rootInode, inodes, warnings };
}

const SLASH = Buffer.from("/");

/** The source root with symlinks resolved: a root given as a link to a directory means that directory. */
function realRoot(root: string): string {
  try {
    return fs.realpathSync(root);
  } catch {
    return path.resolve(root); // lstat() of it reports the error
  }
}

// statfs f_type of the pseudo filesystems whose content a build leaves out (include/uapi/linux/magic.h).
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, "proc"], [0x62656572, "sysfs"], [0x1cd1, "devpts"], [0x27e0eb, "cgroup"], [0x63677270, "cgroup2"],
  [0x64626720, "debugfs"], [0x74726163, "tracefs"], [0x73636673, "securityfs"], [0xcafe4a11, "bpf"],
  [0x6165676c, "pstore"], [0x62656570, "configfs"], [0x65735543, "fusectl"], [0x19800202, "mqueue"],
  [0x42494e4d, "binfmt_misc"], [0xde5e81e4, "efivarfs"], [0xf97cff8c, "selinuxfs"], [0x6e736673, "nsfs"],
  [0x0187, "autofs"],
]);

/** The name of the pseudo filesystem mounted at directory `p`, or undefined for a real one. */
function pseudoFsName(p: Buffer): string | undefined {
  let type: number;
  try {
    type = Number(withShortPath(p, (s) => fs.statfsSync(s)).type);
  } catch (err) {
    throw unreadable(p, err);
  }
  return PSEUDO_FS.get(type);
}

function makeInode(p: Buffer, st: fs.BigIntStats, warnings: string[]): TreeInode {
  const mode = Number(st.mode);
  const type = mode & S_IFMT;
  const ns = st.mtimeNs;
  let sec = ns / 1_000_000_000n;
  if (sec * 1_000_000_000n > ns) sec -= 1n; // floor for times before 1970
  const rdev = Number(st.rdev);
  const inode: TreeInode = {
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: type === S_IFREG || type === S_IFLNK ? Number(st.size) : 0,
    mtimeSec: Number(sec),
    mtimeNsec: Number(ns - sec * 1_000_000_000n),
    // glibc's dev_t layout: major in bits 8..19 and 32..43, minor in bits 0..7 and 20..31.
    rdevMajor: type === S_IFCHR || type === S_IFBLK ? ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff) : 0,
    rdevMinor: type === S_IFCHR || type === S_IFBLK ? (rdev & 0xff) | ((rdev >>> 12) & ~0xff) : 0,
    xattrs: readXattrs(p, warnings),
    sourcePath: p,
    nlink: type === S_IFDIR ? 2 : 1,
    sparse: type === S_IFREG && Number(st.blocks) * 512 < Number(st.size),
  };
  switch (type) {
    case S_IFDIR: case S_IFREG: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: break;
    case S_IFLNK:
      inode.target = readlink(p);
      inode.size = inode.target.length;
      break;
    default:
      throw new EodError("SOURCE_UNSUPPORTED", `Cannot build from ${p}: unknown file type 0${type.toString(8)}`);
  }
  if (inode.rdevMajor > 0xfff || inode.rdevMinor > 0xfffff) {
    throw new EodError("SOURCE_UNSUPPORTED", `Cannot store device ${p}: ${inode.rdevMajor}:${inode.rdevMinor} exceeds 12-bit major / 20-bit minor`);
  }
  return inode;
}

function readXattrs(p: Buffer, warnings: string[]): Xattr[] {
  const ps = p.toString();
  let raw: Buffer[];
  try {
    raw = withShortPath(p, listXattrNameBytes);
  } catch (err) {
    throw unreadable(p, err);
  }
  const names: string[] = [];
  for (const name of raw) {
    if (isUtf8(name)) names.push(name.toString("utf8"));
    else warnings.push(`Skipped xattr "${escapeName(name)}" of ${ps}: its name is not UTF-8 (not supported)`);
  }
  const out: Xattr[] = [];
  for (const name of names.sort()) {
    const split = splitXattrName(name);
    if (!split || split.suffix.length > 255) {
      warnings.push(`Skipped xattr ${JSON.stringify(name)} of ${ps}: EROFS cannot store this name`);
      continue;
    }
    let value: Buffer;
    try {
      value = withShortPath(p, (s) => getXattr(s, name));
    } catch (err) {
      if (err instanceof SysError && err.errno === "ENODATA") continue; // removed since the listing
      throw unreadable(p, err);
    }
    if (value.length > 0xffff) {
      throw new EodError("SOURCE_UNSUPPORTED", `Cannot store xattr ${name} of ${ps}: value is ${value.length} bytes (EROFS limit 65535)`);
    }
    out.push({ name, value });
  }
  const area = xattrAreaSize(out);
  if (area > MAX_XATTR_AREA) {
    throw new EodError("SOURCE_UNSUPPORTED", `Cannot store the xattrs of ${ps}: ${area} bytes in EROFS form, over its limit of ${MAX_XATTR_AREA} per inode`);
  }
  return out;
}

function lstat(p: Buffer): fs.BigIntStats {
  try {
    return withShortPath(p, (s) => fs.lstatSync(s, { bigint: true }));
  } catch (err) {
    throw unreadable(p, err);
  }
}

function readdir(p: Buffer): Buffer[] {
  try {
    return withShortPath(p, (s) => fs.readdirSync(s, { encoding: "buffer" }));
  } catch (err) {
    throw unreadable(p, err);
  }
}

function readlink(p: Buffer): Buffer {
  try {
    return withShortPath(p, (s) => fs.readlinkSync(s, { encoding: "buffer" }));
  } catch (err) {
    throw unreadable(p, err);
  }
}

/** The error for a source path that cannot be read (vanished, no permission, I/O error). */
export function unreadable(p: Buffer | string, err: unknown): EodError {
  const why = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
  return new EodError("SOURCE_UNREADABLE", `Cannot read ${p.toString()}: ${why}`, { cause: err });
}
