// compareTrees(): the check at the end of a round-trip test. It walks two trees with lstat
// (never following a symlink) and lists every difference that a filesystem image must not
// introduce. Names are handled as bytes throughout, so non-UTF-8 names work.
//
// Compared for every path: presence, file type, mode (incl. setuid/setgid/sticky), uid, gid,
// mtime to the nanosecond, size (not for directories, whose size is filesystem-specific),
// rdev (devices), symlink target bytes, xattrs (exact set of names and values), file content
// and hard links: paths are grouped by (dev, ino) in each tree and the groups must match,
// a non-directory's nlink must equal the size of its group, and directory nlink must match.
// Not compared: atime, ctime, btime, blocks, ino, dev.
import { isUtf8 } from "node:buffer";
import fs from "node:fs";
import fsp from "node:fs/promises";
import { promisify } from "node:util";
import { withShortPath } from "../../src/mkfs/long-path.ts";
import { dataRanges, type DataRange } from "../../src/sys/seek.ts";
import { getXattr, listXattrs } from "../../src/sys/xattr.ts";

const MAX_DIFFS = 50;
const PIECE = 1024 * 1024; // content is read and compared in pieces of this many bytes
const CONTENT_WORKERS = 16; // files compared concurrently
const HOLE_SCAN_MIN = 64 * 1024 * 1024; // files at least this big are scanned for holes first
const SLASH = Buffer.from("/");
// The callback API through promisify: about 3 times faster than fs/promises for a bigint lstat.
const lstatAsync = promisify(fs.lstat) as (p: Buffer, opts: { bigint: true }) => Promise<fs.BigIntStats>;
// Paths over PATH_MAX (deep trees) go through withShortPath(), synchronously.
const LONG = 4000;
const lstat = (p: Buffer, opts: { bigint: true }) => (p.length < LONG ? lstatAsync(p, opts) : Promise.resolve(withShortPath(p, (s) => fs.lstatSync(s, opts))));
const readdir = (p: Buffer) => (p.length < LONG ? fsp.readdir(p, { encoding: "buffer" }) : Promise.resolve(withShortPath(p, (s) => fs.readdirSync(s, { encoding: "buffer" }))));
const readlink = (p: Buffer) => withShortPath(p, (s) => fs.readlinkSync(s, { encoding: "buffer" }));

/** Opens a file read-only; a long path is opened in steps, then reopened through /proc/self/fd. */
async function open(p: Buffer): Promise<fsp.FileHandle> {
  if (p.length < LONG) return fsp.open(p, "r");
  const fd = withShortPath(p, (s) => fs.openSync(s, "r"));
  try {
    return await fsp.open(`/proc/self/fd/${fd}`, "r");
  } finally {
    fs.closeSync(fd);
  }
}

/** Options of compareTrees(). */
export interface CompareOptions {
  /** Skip mode, owner, mtime, nlink and xattrs of the root directories (e.g. a mountpoint). */
  ignoreRootAttrs?: boolean;
  /**
   * Find holes with SEEK_DATA/SEEK_HOLE in files of 64 MiB or more, so that the holes of a
   * sparse file are not read (default true). lseek runs synchronously on the main thread:
   * set false when `actual` is served by this process and its metadata may not be local yet.
   */
  seekHoles?: boolean;
}

/** One path of a tree: `rel` is relative to the root (empty for the root itself). */
interface Entry {
  rel: Buffer;
  abs: Buffer;
  st: fs.BigIntStats;
}

/** Paths of one tree keyed by their bytes as latin1 (lossless, and sorts bytewise). */
type Tree = Map<string, Entry>;

/** Differences found so far: at most MAX_DIFFS lines; `truncated` once one more was found. */
interface Diffs {
  list: string[];
  truncated: boolean;
}

/**
 * Differences between tree `expected` and tree `actual`, as readable lines naming the path
 * (JSON-quoted, relative to the root; non-UTF-8 bytes shown as \xNN). Empty when the trees
 * are identical. At most 50 are listed, followed by a line saying that it stopped there.
 * xattrs are read with synchronous calls (src/sys/xattr.ts); everything else is async.
 * @example
 * assert.deepEqual(await compareTrees(src, mount.dir, { ignoreRootAttrs: true }), []);
 */
export async function compareTrees(expected: string, actual: string, opts: CompareOptions = {}): Promise<string[]> {
  const diffs: Diffs = { list: [], truncated: false };
  const [exp, act] = await Promise.all([walk(expected), walk(actual)]);
  const both = compareEntries(exp, act, diffs, opts.ignoreRootAttrs ?? false);
  compareHardLinks(exp, act, both, diffs);
  await compareContents(
    both.filter((k) => exp.get(k)!.st.isFile()),
    exp,
    act,
    diffs,
    opts.seekHoles ?? true,
  );
  return diffs.truncated ? [...diffs.list, `... stopped after ${MAX_DIFFS} differences`] : diffs.list;
}

function add(diffs: Diffs, line: string): void {
  if (diffs.list.length < MAX_DIFFS) diffs.list.push(line);
  else diffs.truncated = true;
}

// ---- walking

async function walk(root: string): Promise<Tree> {
  const tree: Tree = new Map();
  const rootAbs = Buffer.from(root);
  tree.set("", { rel: Buffer.alloc(0), abs: rootAbs, st: await lstat(rootAbs, { bigint: true }) });
  const visit = async (rel: Buffer, abs: Buffer): Promise<void> => {
    const names = await readdir(abs);
    const children = await Promise.all(
      names.map(async (name) => {
        const childRel = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
        const childAbs = Buffer.concat([abs, SLASH, name]);
        return { rel: childRel, abs: childAbs, st: await lstat(childAbs, { bigint: true }) };
      }),
    );
    for (const child of children) tree.set(child.rel.toString("latin1"), child);
    for (const child of children) if (child.st.isDirectory()) await visit(child.rel, child.abs);
  };
  await visit(Buffer.alloc(0), rootAbs);
  return tree;
}

// ---- metadata

/** Compares metadata of every path; returns the keys present in both with the same type. */
function compareEntries(exp: Tree, act: Tree, diffs: Diffs, ignoreRootAttrs: boolean): string[] {
  const keys = [...new Set([...exp.keys(), ...act.keys()])].sort();
  // Paths under a directory that is missing or has another type are not listed one by one.
  const hidden = new Set<string>();
  const both: string[] = [];
  for (const key of keys) {
    const parent = key.includes("/") ? key.slice(0, key.lastIndexOf("/")) : "";
    if (key !== "" && hidden.has(parent)) {
      hidden.add(key);
      continue;
    }
    const e = exp.get(key);
    const a = act.get(key);
    const where = show(key);
    if (!e || !a) {
      add(diffs, e ? `${where}: missing in actual (expected ${typeName(e.st)})` : `${where}: not in expected (actual ${typeName(a!.st)})`);
      hidden.add(key);
      continue;
    }
    if (typeName(e.st) !== typeName(a.st)) {
      add(diffs, `${where}: type expected ${typeName(e.st)}, actual ${typeName(a.st)}`);
      hidden.add(key);
      continue;
    }
    both.push(key);
    compareStats(where, e, a, diffs, ignoreRootAttrs && key === "");
  }
  return both;
}

function compareStats(where: string, e: Entry, a: Entry, diffs: Diffs, skipAttrs: boolean): void {
  const differ = (what: string, ev: string, av: string) => {
    if (ev !== av) add(diffs, `${where}: ${what} expected ${ev}, actual ${av}`);
  };
  if (!skipAttrs) {
    differ("mode", `0${e.st.mode.toString(8)}`, `0${a.st.mode.toString(8)}`);
    differ("uid", String(e.st.uid), String(a.st.uid));
    differ("gid", String(e.st.gid), String(a.st.gid));
    differ("mtime", formatNs(e.st.mtimeNs), formatNs(a.st.mtimeNs));
    if (e.st.isDirectory()) differ("nlink", String(e.st.nlink), String(a.st.nlink));
    compareXattrs(where, e, a, diffs);
  }
  if (!e.st.isDirectory()) differ("size", String(e.st.size), String(a.st.size));
  if (e.st.isCharacterDevice() || e.st.isBlockDevice()) differ("rdev", formatDev(e.st.rdev), formatDev(a.st.rdev));
  if (e.st.isSymbolicLink()) {
    const et = readlink(e.abs);
    const at = readlink(a.abs);
    if (!et.equals(at)) add(diffs, `${where}: symlink target expected ${showBytes(et)}, actual ${showBytes(at)}`);
  }
}

function compareXattrs(where: string, e: Entry, a: Entry, diffs: Diffs): void {
  let ex: Map<string, Buffer> | undefined;
  let ax: Map<string, Buffer> | undefined;
  try {
    ex = readXattrs(e);
    ax = readXattrs(a);
  } catch (err) {
    add(diffs, `${where}: cannot read xattrs: ${(err as Error).message}`);
    return;
  }
  for (const name of [...new Set([...ex.keys(), ...ax.keys()])].sort()) {
    const ev = ex.get(name);
    const av = ax.get(name);
    if (!av) add(diffs, `${where}: xattr ${JSON.stringify(name)} missing in actual`);
    else if (!ev) add(diffs, `${where}: xattr ${JSON.stringify(name)} not in expected (actual ${showValue(av)})`);
    else if (!ev.equals(av)) add(diffs, `${where}: xattr ${JSON.stringify(name)} expected ${showValue(ev)}, actual ${showValue(av)}`);
  }
}

/** All xattrs of an entry (the xattr calls take the path as bytes, so any name works). */
function readXattrs(e: Entry): Map<string, Buffer> {
  return withShortPath(e.abs, (p) => new Map(listXattrs(p).map((name) => [name, getXattr(p, name)] as const)));
}

// ---- hard links

function compareHardLinks(exp: Tree, act: Tree, both: string[], diffs: Diffs): void {
  const expGroups = inodeGroups(exp);
  const actGroups = inodeGroups(act);
  checkNlink("expected", exp, expGroups, diffs);
  checkNlink("actual", act, actGroups, diffs);
  const reported = new Set<string>();
  for (const key of both) {
    const eg = expGroups.get(key);
    const ag = actGroups.get(key);
    if (!eg || !ag || sameGroup(eg, ag)) continue;
    const pair = `${eg.join("\0")}\n${ag.join("\0")}`;
    if (reported.has(pair)) continue;
    reported.add(pair);
    add(diffs, `${show(key)}: hard links expected [${eg.map(show).join(", ")}], actual [${ag.map(show).join(", ")}]`);
  }
}

/** For every non-directory: the sorted keys of all paths sharing its inode (itself included). */
function inodeGroups(tree: Tree): Map<string, string[]> {
  const byInode = new Map<string, string[]>();
  for (const [key, e] of tree) {
    if (e.st.isDirectory()) continue;
    const id = `${e.st.dev}:${e.st.ino}`;
    const group = byInode.get(id);
    if (group) group.push(key);
    else byInode.set(id, [key]);
  }
  const groups = new Map<string, string[]>();
  for (const group of byInode.values()) {
    group.sort();
    for (const key of group) groups.set(key, group);
  }
  return groups;
}

function checkNlink(side: string, tree: Tree, groups: Map<string, string[]>, diffs: Diffs): void {
  for (const [key, group] of groups) {
    if (group[0] !== key) continue; // once per inode
    const nlink = tree.get(key)!.st.nlink;
    if (nlink !== BigInt(group.length)) {
      add(diffs, `${show(key)}: nlink in ${side} is ${nlink} but ${group.length} name(s) share the inode there`);
    }
  }
}

function sameGroup(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

// ---- content

async function compareContents(keys: string[], exp: Tree, act: Tree, diffs: Diffs, seekHoles: boolean): Promise<void> {
  // Same-size files only: a size difference is already listed.
  const todo = keys.filter((k) => exp.get(k)!.st.size === act.get(k)!.st.size && exp.get(k)!.st.size > 0n);
  const found: (string | undefined)[] = new Array(todo.length);
  // Biggest first, so that a huge file overlaps the many small ones instead of running last.
  const order = todo.map((_, i) => i).sort((x, y) => Number(exp.get(todo[y])!.st.size - exp.get(todo[x])!.st.size));
  let next = 0;
  let count = diffs.list.length;
  const worker = async () => {
    const bufs: [Buffer, Buffer] = [Buffer.alloc(PIECE), Buffer.alloc(PIECE)];
    while (next < todo.length && count < MAX_DIFFS) {
      const i = order[next++];
      const e = exp.get(todo[i])!;
      try {
        found[i] = await compareContent(e.abs, act.get(todo[i])!.abs, Number(e.st.size), bufs, seekHoles);
      } catch (err) {
        found[i] = `cannot compare content: ${(err as Error).message}`;
      }
      if (found[i]) count++;
    }
  };
  await Promise.all(Array.from({ length: CONTENT_WORKERS }, worker));
  if (next < todo.length) diffs.truncated = true;
  found.forEach((line, i) => line && add(diffs, `${show(todo[i])}: ${line}`));
}

/** Returns undefined when files `a` and `b` (both of `size` bytes) hold the same bytes. */
async function compareContent(a: Buffer, b: Buffer, size: number, bufs: [Buffer, Buffer], seekHoles: boolean): Promise<string | undefined> {
  const fa = await open(a);
  try {
    const fb = await open(b);
    try {
      const whole = [{ offset: 0, length: size }];
      const scan = seekHoles && size >= HOLE_SCAN_MIN;
      const ra = scan ? holesOrWhole(fa.fd, size) : whole;
      const rb = scan ? holesOrWhole(fb.fd, size) : whole;
      for (const seg of segments(ra, rb, size)) {
        if (!seg.inA && !seg.inB) continue; // a hole in both: zeros on both sides
        for (let pos = seg.start; pos < seg.end; pos += PIECE) {
          const len = Math.min(PIECE, seg.end - pos);
          // Where one side is a hole, only the other side is read, and must be all zeros.
          const da = seg.inA ? await readFull(fa, bufs[0], len, pos) : zeros(bufs[0], len);
          const db = seg.inB ? await readFull(fb, bufs[1], len, pos) : zeros(bufs[1], len);
          if (da.length !== len || db.length !== len) {
            return `content ends early: at byte ${pos + Math.min(da.length, db.length)} of ${size}`;
          }
          if (!da.equals(db)) {
            let i = 0;
            while (da[i] === db[i]) i++;
            return `content differs from byte ${pos + i}: expected 0x${hex(da[i])}, actual 0x${hex(db[i])}`;
          }
        }
      }
      return undefined;
    } finally {
      await fb.close();
    }
  } finally {
    await fa.close();
  }
}

function holesOrWhole(fd: number, size: number): DataRange[] {
  try {
    return dataRanges(fd, size);
  } catch {
    return [{ offset: 0, length: size }]; // cannot tell: read it all
  }
}

/** Cuts [0, size) at every range edge of `ra` and `rb`; each piece is in or out of each. */
function segments(ra: DataRange[], rb: DataRange[], size: number): { start: number; end: number; inA: boolean; inB: boolean }[] {
  const cuts = new Set([0, size]);
  for (const r of [...ra, ...rb]) {
    cuts.add(r.offset);
    cuts.add(r.offset + r.length);
  }
  const sorted = [...cuts].filter((c) => c <= size).sort((x, y) => x - y);
  const inside = (ranges: DataRange[], pos: number) => ranges.some((r) => r.offset <= pos && pos < r.offset + r.length);
  const out = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    out.push({ start: sorted[i], end: sorted[i + 1], inA: inside(ra, sorted[i]), inB: inside(rb, sorted[i]) });
  }
  return out;
}

async function readFull(fh: fsp.FileHandle, buf: Buffer, len: number, pos: number): Promise<Buffer> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

function zeros(buf: Buffer, len: number): Buffer {
  return buf.fill(0, 0, len).subarray(0, len);
}

// ---- formatting

function show(key: string): string {
  return key === "" ? '"."' : showBytes(Buffer.from(key, "latin1"));
}

/** JSON-quoted; bytes that are not UTF-8 appear as \xNN (with JSON's doubled backslash). */
function showBytes(b: Buffer): string {
  if (isUtf8(b)) return JSON.stringify(b.toString("utf8"));
  let s = "";
  for (const byte of b) s += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${hex(byte)}`;
  return JSON.stringify(s);
}

function showValue(v: Buffer): string {
  const printable = v.every((c) => c >= 0x20 && c < 0x7f);
  if (printable && v.length <= 64) return JSON.stringify(v.toString("latin1"));
  return `${v.length} bytes ${v.subarray(0, 32).toString("hex")}${v.length > 32 ? "…" : ""}`;
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, "0");
}

function typeName(st: fs.BigIntStats): string {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char device";
  if (st.isBlockDevice()) return "block device";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  return `unknown (mode 0${st.mode.toString(8)})`;
}

/** glibc's dev_t: major in bits 8–19 and 32–43, minor in bits 0–7 and 20–31 (and 44–63). */
function formatDev(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function formatNs(t: bigint): string {
  const abs = t < 0n ? -t : t;
  return `${t < 0n ? "-" : ""}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, "0")}s`;
}
