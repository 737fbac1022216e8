// Source trees for round-trip tests: build an image from the tree, mount it with the real
// kernel, then compareTrees() the mount with the tree. makeAwkwardTree() makes everything a
// Linux directory can hold that an EROFS writer tends to get wrong; makeSmallTree() is a
// quick tree for tests that do not need a kernel. Both are deterministic: fixed names,
// contents from a seeded PRNG, fixed owners, modes and mtimes (only atime and ctime vary).
//
// makeAwkwardTree(root) layout, and why each part is there:
//   files/      sizes around the block size (0, 1, 100, 3000, 4095, 4096, 4097, 8192) for
//               inline/tail packing; 1 MiB+123 and 3 MiB of random data for multi-chunk files;
//               `repeated-4x1MiB` (one random 1 MiB block four times, the same block that
//               starts `random-3MiB`) and `copy-of-random-3MiB` so chunk dedup has work;
//               `zeros-1MiB` written as real zeros; `sparse` (opts.sparseSize, default 5 GiB,
//               made with truncate) with data islands at 0, across a 1 MiB chunk boundary in
//               the middle (not block aligned) and in the last 777 bytes
//   names/      255-byte names (ASCII; 85 × "漢"; 63 × "😀" + "abc"), accents, CJK, emoji,
//               NFC "café" next to NFD "café", spaces, a name holding "\n", "\x01", "\x7f"
//               and "\t", and one directory whose name is not UTF-8 (bytes e9 ff), with a
//               file inside: names are bytes, a writer must not decode them
//   sort/       names whose bytewise order differs from any locale order: EROFS dirents
//               must be sorted with strcmp
//   bigdir/     opts.bigDirEntries (default 20000) entries with names of varying length:
//               mostly small files (some empty), every 500th a subdir, every 500th a symlink;
//               the directory spans many dirent blocks
//   deep/       opts.depth (default 60) nested directories, path about 30 × depth bytes,
//               `bottom.txt` at the bottom
//   symlinks/   targets of 1, 100, 4000 and 4095 (the maximum) bytes, relative, absolute,
//               dangling, to a directory, to another symlink; one owned 100000:200000
//   hardlinks/  one file with 3 names in 3 directories (the third is `/hardlink-top`), a
//               hard-linked empty file with 2 names
//   devices/    char 4095:1048575 (largest 12-bit major, 20-bit minor), block 259:65536,
//               char 1:3, char 0:0 (an overlayfs whiteout), a fifo and a Unix socket
//   owners/     uid/gid 0, 65535, 65536, 100000:200000 and 4294967294 (compact inodes hold
//               only 16 bits), on files, a directory and a symlink (lchown)
//   times/      mtimes before 1970 (-1e9 s, -1 s, -0.5 s), at 0, at 2^31, 2^32-1 and 2^33 s,
//               with nanoseconds (.123456789, .000000001, .999999999), on files, a directory
//               and a symlink. Every other entry also gets its own whole-second mtime, so
//               mtimes differ throughout (compact inodes have no mtime of their own)
//   modes/      04755, 02755, 07777 and 0000 files; 02755, 01777 and 0000 directories
//   xattrs/     user.* (1-byte name, 200-byte name, 250-byte name, empty value, 3000-byte
//               value, a value with NULs, a non-ASCII name), trusted.*, security.test,
//               security.capability (binary vfs_cap_data v2), system.posix_acl_access and
//               system.posix_acl_default (binary posix_acl_xattr v2, see aclXattr()), one
//               user.* pair shared by 5 files (shared xattrs), trusted.overlay.opaque on a
//               directory; trusted/security xattrs on a symlink, a device and a fifo
//               (the kernel allows user.* only on regular files and directories)
//   empty-dir/  nothing inside
//
// Mtime precision: Node's utimes takes float seconds, libuv truncates them to whole
// microseconds and Node replaces a negative time with "now". So whole non-negative seconds
// are set with fs.lutimesSync(), and the rest (nanoseconds, before 1970) with
// `touch -h -m -d @S.NNNNNNNNN` (utimensat, exact to the nanosecond). Every mtime is
// checked against lstat({ bigint: true }).mtimeNs before makeAwkwardTree() returns.
// Directory mtimes are set last, deepest first, since adding an entry changes them.
//
// The Unix socket is bound by a child Node process: libuv unlinks a listening socket's
// path on close, so the child binds a temporary name and renames it before closing.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { setXattr } from "../../src/sys/xattr.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const NS_PER_S = 1_000_000_000n;

/** Options of makeAwkwardTree(); the defaults make the full-size tree. */
export interface AwkwardTreeOptions {
  /** Entries directly in `bigdir/`; default 20000. */
  bigDirEntries?: number;
  /** Apparent size of `files/sparse` in bytes; default 5 GiB, at least 4 MiB. */
  sparseSize?: number;
  /** Nested directories under `deep/`; default 60. */
  depth?: number;
}

/** What to set on a new entry; anything left out gets a deterministic default. */
interface Meta {
  /** Permission bits incl. setuid/setgid/sticky; default 0644 (0755 for directories). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Nanoseconds since the epoch; default: the next whole second of ctx.nextMtimeSec. */
  mtimeNs?: bigint;
  xattrs?: Record<string, string | Uint8Array>;
}

/** State of one tree generation, passed explicitly (no module-level state). */
interface Ctx {
  root: string;
  random: (length: number) => Buffer;
  /** Default mtimes count up from here, one second per entry. */
  nextMtimeSec: number;
  /** mtime of every entry, applied by applyMtimes() once the tree is complete. */
  mtimes: { path: string | Buffer; mtimeNs: bigint; isDir: boolean }[];
}

/**
 * Fills the empty directory `root` with the awkward tree described at the top of this file.
 * Needs root (mknod, chown, trusted.* xattrs). The defaults take a few seconds and about
 * 10 MiB of disk; `files/sparse` has an apparent size of 5 GiB.
 * @example
 * makeAwkwardTree(src, { bigDirEntries: 2000, sparseSize: 64 * 1024 * 1024 });
 */
export function makeAwkwardTree(root: string, opts: AwkwardTreeOptions = {}): void {
  const bigDirEntries = opts.bigDirEntries ?? 20000;
  const sparseSize = opts.sparseSize ?? 5 * GiB;
  const depth = opts.depth ?? 60;
  if (!Number.isSafeInteger(sparseSize) || sparseSize < 4 * MiB) {
    throw new RangeError(`Cannot make awkward tree: sparseSize must be an integer ≥ 4 MiB, got ${sparseSize}`);
  }
  const ctx = newCtx(root, 0x5eed_e70f);
  addFiles(ctx, sparseSize);
  addNames(ctx);
  addSortDir(ctx);
  addBigDir(ctx, bigDirEntries);
  addDeep(ctx, depth);
  addSymlinks(ctx);
  addHardLinks(ctx);
  addDevices(ctx);
  addOwners(ctx);
  addTimes(ctx);
  addModes(ctx);
  addXattrs(ctx);
  addDir(ctx, "empty-dir");
  ctx.mtimes.push({ path: root, mtimeNs: ns(1_700_000_000, 424242424), isDir: true });
  applyMtimes(ctx);
}

/**
 * Fills the empty directory `root` with a small tree for tests without a kernel: files
 * `hello.txt` (with xattr user.test), `empty`, `data-5000` (5000 random bytes), directory
 * `sub/` holding `nested.txt` and `hello-link` (a hard link to hello.txt), and symlink
 * `link` → `hello.txt`. Works without root where the filesystem supports user.* xattrs.
 */
export function makeSmallTree(root: string): void {
  const ctx = newCtx(root, 0x5a11);
  addFile(ctx, "hello.txt", "hello\n", { xattrs: { "user.test": "small" } });
  addFile(ctx, "empty", "");
  addFile(ctx, "data-5000", ctx.random(5000));
  addDir(ctx, "sub");
  addFile(ctx, "sub/nested.txt", "nested\n");
  fs.linkSync(path.join(root, "hello.txt"), path.join(root, "sub/hello-link"));
  addSymlink(ctx, "link", "hello.txt");
  ctx.mtimes.push({ path: root, mtimeNs: ns(1_600_000_000), isDir: true });
  applyMtimes(ctx);
}

function newCtx(root: string, seed: number): Ctx {
  return { root, random: prng(seed), nextMtimeSec: 1_500_000_000, mtimes: [] };
}

/** mulberry32: small, fast and deterministic; not for anything that needs real randomness. */
function prng(seed: number): (length: number) => Buffer {
  let state = seed >>> 0;
  return (length) => {
    const words = new Uint32Array(Math.ceil(length / 4));
    for (let i = 0; i < words.length; i++) {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      words[i] = (t ^ (t >>> 14)) >>> 0;
    }
    return Buffer.from(words.buffer, 0, length);
  };
}

/** Seconds plus nanoseconds since the epoch, as the bigint that lstat's mtimeNs reports. */
function ns(sec: number, nsec = 0): bigint {
  return BigInt(sec) * NS_PER_S + BigInt(nsec);
}

// ---- entry makers: create, then owner, then mode, then xattrs; mtimes come at the very end.
// Order matters: chown clears setuid/setgid and security.capability, and writing an access
// ACL rewrites the group bits of the mode.

function addFile(ctx: Ctx, rel: string, content: string | Uint8Array, meta: Meta = {}): string {
  const p = path.join(ctx.root, rel);
  fs.writeFileSync(p, content);
  finish(ctx, p, "other", meta);
  return p;
}

function addDir(ctx: Ctx, rel: string, meta: Meta = {}): string {
  const p = path.join(ctx.root, rel);
  fs.mkdirSync(p);
  finish(ctx, p, "dir", meta);
  return p;
}

function addSymlink(ctx: Ctx, rel: string, target: string, meta: Meta = {}): string {
  const p = path.join(ctx.root, rel);
  fs.symlinkSync(target, p);
  finish(ctx, p, "symlink", meta);
  return p;
}

/** A device node, fifo (`p`) or socket (`s`). */
function addSpecial(ctx: Ctx, rel: string, kind: "c" | "b" | "p" | "s", dev?: [number, number], meta: Meta = {}): string {
  const p = path.join(ctx.root, rel);
  if (kind === "s") bindSocket(p);
  else execFileSync("mknod", dev ? [p, kind, String(dev[0]), String(dev[1])] : [p, kind]);
  finish(ctx, p, "other", meta);
  return p;
}

function finish(ctx: Ctx, p: string | Buffer, kind: "other" | "dir" | "symlink", meta: Meta): void {
  if (meta.uid !== undefined || meta.gid !== undefined) fs.lchownSync(p, meta.uid ?? 0, meta.gid ?? 0);
  // Always chmod: the umask must not leak into the tree.
  if (kind !== "symlink") fs.chmodSync(p, meta.mode ?? (kind === "dir" ? 0o755 : 0o644));
  for (const [name, value] of Object.entries(meta.xattrs ?? {})) {
    if (typeof p !== "string") throw new TypeError("Cannot set xattrs on a non-UTF-8 path");
    setXattr(p, name, typeof value === "string" ? Buffer.from(value) : value);
  }
  ctx.mtimes.push({ path: p, mtimeNs: meta.mtimeNs ?? ns(ctx.nextMtimeSec++), isDir: kind === "dir" });
}

// libuv unlinks the path of a listening pipe on close(), so bind a temporary name, rename it
// to the real one (the socket inode stays), then close. cwd keeps the bound path short
// (sun_path holds 108 bytes).
function bindSocket(p: string): void {
  const script =
    'const net = require("node:net"), fs = require("node:fs"); const [tmp, name] = process.argv.slice(1);' +
    "const s = net.createServer().listen(tmp, () => { fs.renameSync(tmp, name); s.close(); });";
  execFileSync(process.execPath, ["-e", script, ".socket-tmp", path.basename(p)], { cwd: path.dirname(p) });
  if (!fs.lstatSync(p).isSocket()) throw new Error(`Cannot make socket ${JSON.stringify(p)}: not a socket after bind`);
}

// ---- tree parts

function addFiles(ctx: Ctx, sparseSize: number): void {
  addDir(ctx, "files");
  addFile(ctx, "files/empty", "");
  for (const size of [1, 100, 3000, 4095, 4096, 4097, 8192, MiB + 123]) addFile(ctx, `files/size-${size}`, ctx.random(size));
  const random3 = ctx.random(3 * MiB);
  addFile(ctx, "files/random-3MiB", random3);
  addFile(ctx, "files/copy-of-random-3MiB", random3);
  const block = random3.subarray(0, MiB);
  addFile(ctx, "files/repeated-4x1MiB", Buffer.concat([block, block, block, block]));
  addFile(ctx, "files/zeros-1MiB", Buffer.alloc(MiB));

  const sparse = path.join(ctx.root, "files/sparse");
  const fd = fs.openSync(sparse, "wx");
  try {
    fs.ftruncateSync(fd, sparseSize);
    fs.writeSync(fd, ctx.random(4 * KiB + 17), 0, undefined, 0);
    const middle = Math.floor(sparseSize / 2 / MiB) * MiB - 1000; // straddles a chunk boundary
    fs.writeSync(fd, ctx.random(10_000), 0, undefined, middle);
    fs.writeSync(fd, ctx.random(777), 0, undefined, sparseSize - 777);
  } finally {
    fs.closeSync(fd);
  }
  finish(ctx, sparse, "other", {});
}

function addNames(ctx: Ctx): void {
  addDir(ctx, "names");
  const names = [
    "a".repeat(255),
    "漢".repeat(85), // 3 bytes each: 255
    "😀".repeat(63) + "abc", // 4 bytes each: 252 + 3
    "café", // NFC
    "cafe\u0301", // NFD: different bytes, same text
    "naïve résumé with spaces",
    "日本語のファイル名",
    "emoji-🎉🐍",
    "Ünïcödé",
    "line\nbreak\x01ctrl\x7fdel\ttab",
    " leading space",
    "trailing space ",
    "-dash",
    ".hidden",
    "...",
    'quote"\'back\\slash*?<>|:',
  ];
  for (const name of names) {
    if (Buffer.byteLength(name) > 255) throw new Error(`Name too long: ${name}`);
    addFile(ctx, `names/${name}`, `${name}\n`);
  }
  // Not UTF-8: "latin1-é" in ISO-8859-1 plus a 0xff byte. Buffer paths only, and whole-second
  // mtimes (touch cannot be handed a non-UTF-8 argument).
  const dir = Buffer.concat([Buffer.from(path.join(ctx.root, "names/latin1-")), Buffer.from([0xe9, 0xff])]);
  fs.mkdirSync(dir);
  finish(ctx, dir, "dir", {});
  const inner = Buffer.concat([dir, Buffer.from("/inner.txt")]);
  fs.writeFileSync(inner, "inside a non-UTF-8 directory\n");
  finish(ctx, inner, "other", {});
}

function addSortDir(ctx: Ctx): void {
  addDir(ctx, "sort");
  for (const name of ["a", "B", "b", "A", "_x", "-x", "Z", "z", "ä", "é", "e", "É", "1", "10", "9", "~", "ß", "ss", "Å", "a b", "a-b", "a.b", "a_b", "ab"]) {
    addFile(ctx, `sort/${name}`, name);
  }
}

function addBigDir(ctx: Ctx, entries: number): void {
  addDir(ctx, "bigdir");
  const name = (i: number) => `e${String(i).padStart(5, "0")}-${"x".repeat(i % 37)}`;
  for (let i = 0; i < entries; i++) {
    if (i % 500 === 250) {
      addDir(ctx, `bigdir/${name(i)}`);
      if (i % 1000 === 250) addFile(ctx, `bigdir/${name(i)}/inside`, `inside ${i}\n`);
    } else if (i % 500 === 125) {
      addSymlink(ctx, `bigdir/${name(i)}`, name(i - 1));
    } else {
      addFile(ctx, `bigdir/${name(i)}`, `entry ${i}\n`.repeat(i % 7));
    }
  }
}

function addDeep(ctx: Ctx, depth: number): void {
  let rel = addDirRel(ctx, "deep");
  for (let level = 1; level <= depth; level++) rel = addDirRel(ctx, `${rel}/level-${String(level).padStart(3, "0")}-${"d".repeat(20)}`);
  addFile(ctx, `${rel}/bottom.txt`, `bottom of ${depth} levels\n`);
}

function addDirRel(ctx: Ctx, rel: string): string {
  addDir(ctx, rel);
  return rel;
}

/** A deterministic relative-looking symlink target of exactly `length` bytes. */
function target(length: number): string {
  return "long-target-component/".repeat(Math.ceil(length / 22)).slice(0, length);
}

function addSymlinks(ctx: Ctx): void {
  addDir(ctx, "symlinks");
  for (const length of [1, 100, 4000, 4095]) addSymlink(ctx, `symlinks/len-${length}`, target(length));
  addSymlink(ctx, "symlinks/relative", "../files/size-100");
  addSymlink(ctx, "symlinks/absolute", "/usr/share/doc/erofs-ondemand/absolute-target");
  addSymlink(ctx, "symlinks/dangling", "does-not-exist");
  addSymlink(ctx, "symlinks/to-dir", "../deep");
  addSymlink(ctx, "symlinks/to-symlink", "relative");
  addSymlink(ctx, "symlinks/owned", "../files/empty", { uid: 100000, gid: 200000 });
}

function addHardLinks(ctx: Ctx): void {
  addDir(ctx, "hardlinks");
  addDir(ctx, "hardlinks/a");
  addDir(ctx, "hardlinks/b");
  const data = addFile(ctx, "hardlinks/a/data", ctx.random(6000), { mode: 0o640, uid: 1000, gid: 1000, xattrs: { "user.linked": "one inode" } });
  fs.linkSync(data, path.join(ctx.root, "hardlinks/b/data-link"));
  fs.linkSync(data, path.join(ctx.root, "hardlink-top"));
  const empty = addFile(ctx, "hardlinks/empty-1", "");
  fs.linkSync(empty, path.join(ctx.root, "hardlinks/b/empty-2"));
}

function addDevices(ctx: Ctx): void {
  addDir(ctx, "devices");
  const xattrs = { "trusted.dev": "device xattr", "security.dev": "s" };
  addSpecial(ctx, "devices/char-max", "c", [4095, 1048575], { mode: 0o600, xattrs });
  addSpecial(ctx, "devices/block-259-65536", "b", [259, 65536], { mode: 0o660, gid: 6 });
  addSpecial(ctx, "devices/null-like", "c", [1, 3], { mode: 0o666 });
  addSpecial(ctx, "devices/whiteout", "c", [0, 0], { mode: 0o000 });
  addSpecial(ctx, "devices/fifo", "p", undefined, { mode: 0o620, xattrs: { "trusted.fifo": "f" } });
  addSpecial(ctx, "devices/socket", "s", undefined, { mode: 0o777 });
}

function addOwners(ctx: Ctx): void {
  addDir(ctx, "owners");
  const owners: [number, number][] = [[0, 0], [65534, 65534], [65535, 65535], [65535, 65536], [65536, 65535], [65536, 65536], [100000, 200000], [4294967294, 4294967294]];
  for (const [uid, gid] of owners) addFile(ctx, `owners/${uid}-${gid}`, `${uid}:${gid}\n`, { uid, gid });
  addDir(ctx, "owners/dir-100000-200000", { uid: 100000, gid: 200000 });
  addSymlink(ctx, "owners/symlink-70000-80000", "0-0", { uid: 70000, gid: 80000 });
}

function addTimes(ctx: Ctx): void {
  addDir(ctx, "times", { mtimeNs: ns(1234567890, 987654321) });
  const times: [string, bigint][] = [
    ["minus-1e9", ns(-1_000_000_000)],
    ["minus-1", ns(-1)],
    ["minus-half", ns(-1, 500_000_000)], // -0.5 s
    ["minus-1e9-plus-1ns", ns(-1_000_000_000, 1)],
    ["zero", ns(0)],
    ["one-ns", ns(0, 1)],
    ["2pow31", ns(2 ** 31)],
    ["2pow32-1", ns(2 ** 32 - 1, 999_999_999)],
    ["2pow33", ns(2 ** 33)],
    ["ns-123456789", ns(1234567890, 123456789)],
    ["ns-1", ns(1_600_000_000, 1)],
    ["ns-999999999", ns(1_600_000_000, 999_999_999)],
  ];
  for (const [name, mtimeNs] of times) addFile(ctx, `times/${name}`, name, { mtimeNs });
  addDir(ctx, "times/dir-ns", { mtimeNs: ns(1_000_000_000, 500) });
  addSymlink(ctx, "times/symlink-old", "zero", { mtimeNs: ns(-86400, 123456789) });
}

function addModes(ctx: Ctx): void {
  addDir(ctx, "modes");
  for (const mode of [0o4755, 0o2755, 0o7777, 0o0000, 0o1644, 0o0444, 0o0600, 0o0111]) {
    addFile(ctx, `modes/file-${mode.toString(8).padStart(4, "0")}`, "m", { mode });
  }
  addDir(ctx, "modes/dir-2755", { mode: 0o2755 });
  addDir(ctx, "modes/dir-1777", { mode: 0o1777 });
  addDir(ctx, "modes/dir-0000", { mode: 0o0000 });
}

function addXattrs(ctx: Ctx): void {
  addDir(ctx, "xattrs", { xattrs: { "user.dir": "on a directory", "trusted.overlay.opaque": "y" } });
  addFile(ctx, "xattrs/user-names", "u", {
    xattrs: {
      "user.s": "v",
      [`user.${"n".repeat(195)}`]: "200-byte name",
      [`user.${"m".repeat(245)}`]: "255-byte name (XATTR_NAME_MAX)",
      "user.empty": "",
      "user.nul": Uint8Array.from([0, 1, 0, 255, 0]),
      "user.ünïcödé-名前": "non-ASCII name",
    },
  });
  addFile(ctx, "xattrs/user-big", "b", { xattrs: { "user.big": ctx.random(3000), "user.small": "s" } });
  addFile(ctx, "xattrs/namespaces", "n", {
    mode: 0o755,
    xattrs: { "trusted.t": "trusted value", "security.test": "security value", "security.capability": capabilityXattr(), "user.u": "user value" },
  });
  addFile(ctx, "xattrs/acl", "a", {
    mode: 0o640,
    xattrs: {
      "system.posix_acl_access": aclXattr([
        [ACL_USER_OBJ, 6], [ACL_USER, 6, 1000], [ACL_USER, 4, 100000], [ACL_GROUP_OBJ, 4], [ACL_GROUP, 4, 200000], [ACL_MASK, 6], [ACL_OTHER, 0],
      ]),
    },
  });
  addDir(ctx, "xattrs/acl-dir", {
    xattrs: {
      "system.posix_acl_access": aclXattr([[ACL_USER_OBJ, 7], [ACL_USER, 5, 4242], [ACL_GROUP_OBJ, 5], [ACL_MASK, 5], [ACL_OTHER, 5]]),
      "system.posix_acl_default": aclXattr([[ACL_USER_OBJ, 7], [ACL_USER, 7, 4242], [ACL_GROUP_OBJ, 5], [ACL_GROUP, 5, 65536], [ACL_MASK, 7], [ACL_OTHER, 0]]),
      "user.dir": "acl dir",
    },
  });
  addFile(ctx, "xattrs/acl-dir/inherits", "inherits the default ACL as its access ACL\n");
  for (let i = 0; i < 5; i++) addFile(ctx, `xattrs/shared-${i}`, `s${i}`, { xattrs: { "user.shared": "same name and value on 5 files", [`user.own-${i}`]: `${i}` } });
  addSymlink(ctx, "xattrs/symlink", "user-names", { xattrs: { "trusted.symlink": "t", "security.symlink": "s" } });
}

// posix_acl_xattr (include/uapi/linux/posix_acl_xattr.h): le32 a_version = 2, then entries
// { le16 e_tag, le16 e_perm, le32 e_id }, sorted by tag then id as the kernel writes them back.
const ACL_USER_OBJ = 0x01;
const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;
const ACL_UNDEFINED_ID = 0xffffffff; // e_id of the *_OBJ, MASK and OTHER entries

function aclXattr(entries: [tag: number, perm: number, id?: number][]): Buffer {
  const buf = Buffer.alloc(4 + 8 * entries.length);
  buf.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    buf.writeUInt16LE(tag, 4 + 8 * i);
    buf.writeUInt16LE(perm, 6 + 8 * i);
    buf.writeUInt32LE(id ?? ACL_UNDEFINED_ID, 8 + 8 * i);
  });
  return buf;
}

// vfs_cap_data revision 2 (include/uapi/linux/capability.h): le32 magic_etc, then
// { le32 permitted, le32 inheritable } for capability words 0 and 1. Here: effective,
// permitted CAP_NET_BIND_SERVICE (bit 10) and CAP_NET_RAW (bit 13).
function capabilityXattr(): Buffer {
  const VFS_CAP_REVISION_2 = 0x02000000;
  const VFS_CAP_FLAGS_EFFECTIVE = 0x000001;
  const buf = Buffer.alloc(20);
  buf.writeUInt32LE(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, 0);
  buf.writeUInt32LE((1 << 10) | (1 << 13), 4);
  return buf;
}

// ---- mtimes

function applyMtimes(ctx: Ctx): void {
  const depthOf = (p: string | Buffer) => Buffer.from(p).filter((b) => b === 0x2f).length;
  const files = ctx.mtimes.filter((m) => !m.isDir);
  const dirs = ctx.mtimes.filter((m) => m.isDir).sort((a, b) => depthOf(b.path) - depthOf(a.path));
  for (const m of [...files, ...dirs]) setMtime(m.path, m.mtimeNs);
  for (const m of ctx.mtimes) {
    const got = fs.lstatSync(m.path, { bigint: true }).mtimeNs;
    if (got !== m.mtimeNs) {
      throw new Error(`Cannot set mtime of ${JSON.stringify(String(m.path))}: wanted ${formatNs(m.mtimeNs)}, lstat reads ${formatNs(got)}`);
    }
  }
}

/** Sets the mtime (and, for lutimes, atime) of `p` without following a symlink. */
function setMtime(p: string | Buffer, mtimeNs: bigint): void {
  // Node turns a negative time into "now", and libuv keeps only microseconds: lutimes is
  // exact for whole non-negative seconds only.
  if (mtimeNs >= 0n && mtimeNs % NS_PER_S === 0n) {
    const sec = Number(mtimeNs / NS_PER_S);
    fs.lutimesSync(p, sec, sec);
    return;
  }
  if (typeof p !== "string") throw new TypeError("Cannot set a negative or sub-second mtime on a non-UTF-8 path");
  execFileSync("touch", ["-h", "-m", "-d", `@${formatNs(mtimeNs)}`, "--", p]);
}

/** "-1.500000000" style: what `touch -d @…` parses, exact to the nanosecond. */
function formatNs(t: bigint): string {
  const abs = t < 0n ? -t : t;
  return `${t < 0n ? "-" : ""}${abs / NS_PER_S}.${String(abs % NS_PER_S).padStart(9, "0")}`;
}
