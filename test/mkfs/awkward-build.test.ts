// `eod build` on awkward trees that test/helpers/awkward-tree.ts does not make (see test/kernel/
// build-roundtrip.test.ts for those): paths longer than PATH_MAX (500 levels), xattr values near 64 KiB and
// hundreds of xattrs on one inode, the root's own mode/owner/xattrs, more xattrs than an EROFS inode holds, an
// xattr name that is not UTF-8, /proc and sysfs mounted inside the tree, the output inside the source, and an
// output path of the wrong kind. Each image is checked with fsck.erofs and by mounting it with the kernel.
//
// The big-xattr trees live on a tmpfs: ext4 (this machine's /tmp) keeps all xattrs of an inode in one block.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { withShortPath } from "../../src/mkfs/long-path.ts";
import { libc } from "../../src/sys/libc.ts";
import { setXattr } from "../../src/sys/xattr.ts";
import { eod, eodOk, haveTool, REPO, tool } from "../helpers/cli.ts";
import { compareTrees } from "../helpers/compare-trees.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { haveRoot, mountAt, mountErofs, tempDir, type MountedImage } from "../helpers/kernel.ts";
import { mountAndCompare } from "../helpers/mount-compare.ts";
import { unavailable } from "../helpers/skip.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : !haveTool("fsck.erofs") ? "needs fsck.erofs (erofs-utils)" : false);
let work = "";
const mounts: MountedImage[] = [];

before(() => {
  if (!skip) work = tempDir("eod-awkward-build-");
});

after(() => {
  for (const m of mounts.reverse()) m.unmount();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A fresh empty directory under `work`. */
function dir(name: string): string {
  const d = path.join(work, name);
  fs.mkdirSync(d);
  return d;
}

/** fsck.erofs of a --single image; `extract` also unpacks every file (erofs-utils cannot for paths over PATH_MAX). */
function fsck(image: string, extract = true): void {
  const r = tool("fsck.erofs", [...(extract ? [`--extract=${image}.x`] : []), image]);
  assert.equal(r.status, 0, `fsck.erofs ${image} failed:\n${r.stderr}${r.stdout}`);
  fs.rmSync(`${image}.x`, { recursive: true, force: true });
}

/** Builds `src` both ways (--single, and -o unpacked to local blobs); fsck and mount-compare each. */
async function roundTrip(src: string, name: string, extract = true): Promise<void> {
  const single = path.join(work, `${name}.erofs`);
  eodOk("build", src, "--single", single);
  fsck(single, extract);
  await mountAndCompare(src, single);
  const img = path.join(work, `${name}-img`);
  eodOk("build", src, "-o", img);
  const [bootstrap, data = ""] = eodOk("unpack", img, "--blobs-to", `${img}-blobs`).trim().split(" ");
  await mountAndCompare(src, bootstrap, data);
  eodOk("check", img);
}

/** A tmpfs mounted on a new directory `name`, unmounted after the tests. */
async function tmpfsDir(name: string): Promise<string> {
  const d = dir(name);
  mounts.push(await mountAt(d, "tmpfs", "size=16m,mode=0755"));
  return d;
}

/** 500 nested directories (paths over 10,000 bytes), with files of every kind and odd metadata at the bottom. */
function makeDeepTree(src: string): void {
  let p = Buffer.from(src);
  for (let level = 0; level < 500; level++) {
    p = Buffer.concat([p, Buffer.from(`/level-${String(level).padStart(3, "0")}-${"d".repeat(12)}`)]);
    withShortPath(p, (s) => fs.mkdirSync(s));
  }
  assert.ok(p.length > 10_000, `deepest directory path is ${p.length} bytes`);
  const at = (name: string) => Buffer.concat([p, Buffer.from(`/${name}`)]);
  withShortPath(at("bottom.txt"), (s) => {
    fs.writeFileSync(s, "bottom\n");
    fs.chownSync(s, 100000, 200000);
    fs.chmodSync(s, 0o4751);
    setXattr(s, "user.deep", Buffer.from("at the bottom"));
    setXattr(s, "trusted.deep", Buffer.alloc(2000, 1));
  });
  withShortPath(at("data"), (s) => fs.writeFileSync(s, Buffer.alloc(300_000, 7)));
  withShortPath(at("link"), (s) => fs.symlinkSync("bottom.txt", s));
  withShortPath(at("hard"), (s) => fs.linkSync(s.toString().replace(/hard$/, "data"), s));
  withShortPath(at("fifo"), (s) => tool("mkfifo", [s.toString()]));
}

test("a tree 500 levels deep (paths over PATH_MAX) round-trips", { skip, timeout: 300_000 }, async () => {
  const src = dir("deep");
  makeDeepTree(src);
  // fsck.erofs --extract (erofs-utils 1.5) fails, then crashes, on a path over PATH_MAX: check without it.
  await roundTrip(src, "deep", false);
});

/** On `src` (a tmpfs): xattrs of 64 KiB, 200 xattrs on one file, and mode, owner and xattrs of the root. */
function makeXattrTree(src: string): void {
  fs.chmodSync(src, 0o1750);
  fs.chownSync(src, 1234, 567890);
  setXattr(src, "user.root", Buffer.from("on the root"));
  setXattr(src, "trusted.root", Buffer.from("trusted on the root"));
  setXattr(src, "security.root", Buffer.from("security on the root"));
  const big = path.join(src, "big");
  fs.writeFileSync(big, "x".repeat(5000));
  setXattr(big, "user.max", Buffer.alloc(65535, 0xab));
  setXattr(big, "trusted.max", Buffer.alloc(65535, 0xcd));
  const many = path.join(src, "many");
  fs.writeFileSync(many, "m");
  for (let i = 0; i < 200; i++) setXattr(many, `user.x${String(i).padStart(3, "0")}`, Buffer.alloc(i * 3, i));
  const bigDir = path.join(src, "dir");
  fs.mkdirSync(bigDir);
  setXattr(bigDir, "trusted.a", Buffer.alloc(65000, 1));
  setXattr(bigDir, "trusted.b", Buffer.alloc(65000, 2));
  fs.writeFileSync(path.join(bigDir, "inside"), "i");
}

test("64 KiB xattr values, 200 xattrs on one file and the root's own mode, owner and xattrs round-trip", { skip, timeout: 120_000 }, async () => {
  const src = await tmpfsDir("xattrs");
  makeXattrTree(src);
  await roundTrip(src, "xattrs");
});

test("more xattrs than an EROFS inode holds: a clear error naming the entry, nothing written", { skip, timeout: 60_000 }, async () => {
  const src = await tmpfsDir("xattrs-over");
  const victim = path.join(src, "over");
  fs.mkdirSync(victim);
  for (let i = 0; i < 5; i++) setXattr(victim, `trusted.v${i}`, Buffer.alloc(65535, i)); // 5 × 64 KiB > 256 KiB
  const out = dir("xattrs-over-out");
  for (const target of [["-o", path.join(out, "img")], ["--single", path.join(out, "one.erofs")]]) {
    const r = eod("build", src, ...target);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^eod: Cannot store the xattrs of .*\/over: \d+ bytes .* limit/, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, r.stderr);
  }
  assert.deepEqual(fs.readdirSync(out), []);
});

test("a layer entry with more xattrs than an EROFS inode holds: a clear error naming it", { skip, timeout: 60_000 }, () => {
  const xattrs = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`trusted.v${i}`, Buffer.alloc(65535, i)]));
  const layer = path.join(work, "xattrs-over.tar");
  fs.writeFileSync(layer, tarArchive([{ path: "etc/over", data: Buffer.from("o"), xattrs }]));
  const out = dir("xattrs-over-layer-out");
  const r = eod("build", layer, "-o", path.join(out, "img"));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^eod: .*etc\/over.*xattrs .*\d+ bytes .* limit/, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, r.stderr);
  assert.deepEqual(fs.readdirSync(out), []);
});

test("an xattr whose name is not UTF-8 is skipped with a warning naming it", { skip, timeout: 60_000 }, async () => {
  const src = dir("xattr-bytes");
  const file = path.join(src, "f");
  fs.writeFileSync(file, "f");
  setXattr(file, "user.ok", Buffer.from("kept"));
  const name = Buffer.from([...Buffer.from("user.bad-"), 0xff, 0xfe, 0]);
  // libc directly: a JS string cannot hold these bytes (koffi passes a Buffer's bytes as they are).
  assert.equal(libc().lsetxattr(Buffer.from(`${file}\0`), name as unknown as string, Buffer.from("v"), 1, 0), 0);
  const image = path.join(work, "xattr-bytes.erofs");
  const r = eod("build", src, "--single", image);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: Skipped xattr "user\.bad-\\xff\\xfe" of .*\/f: its name is not UTF-8/);
  fsck(image);
  const m = await mountErofs(image);
  try {
    assert.equal(tool("getfattr", ["--only-values", "-n", "user.ok", path.join(m.dir, "f")]).stdout, "kept");
  } finally {
    m.unmount();
  }
});

test("/proc and sysfs mounted inside the tree become empty directories, with a warning", { skip, timeout: 120_000 }, async () => {
  const src = dir("chroot");
  fs.writeFileSync(path.join(src, "file"), "data\n");
  for (const [name, type] of [["proc", "proc"], ["sys", "sysfs"]]) {
    fs.mkdirSync(path.join(src, name));
    mounts.push(await mountAt(path.join(src, name), type));
  }
  const image = path.join(work, "chroot.erofs");
  const r = eod("build", src, "--single", image);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /Left out the content of .*\/proc: a proc mount/);
  assert.match(r.stderr, /Left out the content of .*\/sys: a sysfs mount/);
  fsck(image);
  const m = await mountErofs(image);
  try {
    for (const name of ["proc", "sys"]) {
      assert.deepEqual(fs.readdirSync(path.join(m.dir, name)), []);
      assert.equal(fs.statSync(path.join(m.dir, name)).mode, fs.statSync(path.join(src, name)).mode);
    }
    assert.equal(fs.readFileSync(path.join(m.dir, "file"), "utf8"), "data\n");
  } finally {
    m.unmount();
  }
  const img = path.join(work, "chroot-img");
  assert.equal(eod("build", src, "-o", img).status, 0);
  eodOk("check", img);
});

test("an output inside the source is left out of it: rebuilding gives the same image", { skip, timeout: 120_000 }, () => {
  const src = dir("self");
  fs.writeFileSync(path.join(src, "file"), "x".repeat(3000));
  const img = path.join(src, "img");
  // Each build adds or renames an entry of src: put its mtime back, so only a leak of the output can differ.
  const build = (...args: string[]) => { fs.utimesSync(src, 1e9, 1e9); return eod("build", src, ...args); };
  assert.equal(build("-o", img).status, 0);
  const first = fs.readFileSync(path.join(img, "manifest.json"), "utf8");
  const r = build("-o", img);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /Left out .*\/self\/img: it is the build's output/);
  assert.equal(fs.readFileSync(path.join(img, "manifest.json"), "utf8"), first);

  fs.rmSync(img, { recursive: true });
  const single = path.join(src, "one.erofs");
  assert.equal(build("--single", single).status, 0);
  const bytes = fs.readFileSync(single);
  assert.equal(build("--single", single).status, 0);
  assert.ok(fs.readFileSync(single).equals(bytes));
  fsck(single);
});

test("a source given as a symlink to a directory is built from that directory (only the root is followed)", { skip, timeout: 60_000 }, async () => {
  const real = dir("real-source");
  fs.writeFileSync(path.join(real, "file"), "f");
  fs.symlinkSync("file", path.join(real, "inner-link"));
  const link = path.join(work, "source-link");
  fs.symlinkSync(real, link);
  const image = path.join(work, "via-link.erofs");
  const r = eod("build", link, "--single", image);
  assert.equal(r.status, 0, r.stderr);
  fsck(image);
  await mountAndCompare(real, image);
});

test("an output path of the wrong kind fails at once, names it, and is left alone", { skip, timeout: 60_000 }, () => {
  const src = dir("wrong-kind");
  fs.writeFileSync(path.join(src, "file"), "f");
  const file = path.join(work, "a-file");
  fs.writeFileSync(file, "not an image directory");
  const directory = dir("a-directory");
  fs.writeFileSync(path.join(directory, "keep"), "k");
  for (const [args, culprit, why] of [
    [["-o", file], file, "not a directory"],
    [["--single", directory], directory, "is a directory"],
  ]) {
    const r = eod("build", src, ...args);
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.startsWith("eod: ") && r.stderr.includes(culprit as string) && r.stderr.includes(why as string), r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, r.stderr);
  }
  assert.equal(fs.readFileSync(file, "utf8"), "not an image directory");
  assert.deepEqual(fs.readdirSync(directory), ["keep"]);
  assert.deepEqual(fs.readdirSync(work).filter((n) => n.includes(".tmp-")), []);
});

test("a file replaced by a fifo or a symlink after the scan is refused, not opened (no hang, no escape)", { skip, timeout: 60_000 }, () => {
  const d = dir("swapped");
  tool("mkfifo", [path.join(d, "was-a-file")]);
  fs.symlinkSync("/etc/hostname", path.join(d, "now-a-link"));
  // In a child with a timeout: a blocking open of a fifo would hang this process for good.
  const script = `
    import { SourceFile } from ${JSON.stringify(path.join(REPO, "src/mkfs/source-file.ts"))};
    for (const name of ["was-a-file", "now-a-link"]) {
      try { SourceFile.open(Buffer.from(${JSON.stringify(d)} + "/" + name), 10); console.log(name, "opened"); }
      catch (err) { console.log(name, err.message); }
    }`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, `${r.stderr}${r.error ?? ""}`);
  const lines = r.stdout.trim().split("\n");
  assert.match(lines[0], /^was-a-file Cannot read .*was-a-file: no longer a regular file/);
  assert.match(lines[1], /^now-a-link Cannot read .*now-a-link: ELOOP/);
});

const preContent = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const lazySkip = unavailable(skip || (!preContent.ok && `kernel lacks: ${preContent.missing.join("; ")}`));

test("the deep tree and the big-xattr tree mount lazily (eod mount, fanotify) identical to the source", { skip: lazySkip, timeout: 300_000 }, async () => {
  const root = dir("lazy");
  const cache = path.join(root, "cache");
  try {
    for (const [name, make] of [["deep", makeDeepTree], ["xattrs", makeXattrTree]] as const) {
      const src = name === "xattrs" ? await tmpfsDir(`src-${name}`) : dir(`src-${name}`);
      make(src);
      const img = path.join(root, `${name}-img`);
      eodOk("build", src, "-o", img);
      const mnt = path.join(root, `${name}-mnt`);
      fs.mkdirSync(mnt);
      const m = await eodAsync(["mount", img, mnt, "--cache-dir", cache, "--frontend", "fanotify"]);
      assert.equal(m.status, 0, m.stderr);
      assert.deepEqual(await compareTrees(src, mnt, { seekHoles: false }), []);
      const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
      assert.equal(u.status, 0, u.stderr);
    }
  } finally {
    cleanup(root, cache); // whatever a failure left: mounts under root, the holder and the daemon
  }
});
